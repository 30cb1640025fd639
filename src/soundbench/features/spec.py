"""FeatureSpec: everything that decides what a stored feature array contains, and its hash.

A spec comes from a config dict (`FeatureSpec.from_config(name, cfg)`). Keys and defaults:

  common    kind (required: logmel | stft | waveform), sample_rate (required, Hz),
            channels="mono" (mono|left|right|stereo|lrd), clip_seconds=None (None: the dataset's nominal
            clip length, filled by `spec.resolved(clip_seconds)`), pad="zero" (zero|loop|repeat),
            peak_norm=None (scale each clip to this peak |x| after padding; ACIVW: 256), dtype="float32"
            (float32|float16)
  spectral  (logmel and stft) n_fft=2048, win_length=None (= n_fft), hop_length=512,
            window="hann" (hann|hamming|hamming_asym), win_align="center" (center|left), center=True,
            pad_mode="constant" (constant|reflect; librosa 0.11's stft default is "constant", librosa < 0.10
            used "reflect"), power=2.0 (1 magnitude, 2 power), log ("db" for logmel, "none" for stft;
            db|ln|log10|none), log_eps=1e-10, top_db=None (db only), n_frames=None (cut / zero-pad frames),
            precision="float64-where-needed" (float64-where-needed|float32: see below)
  logmel    n_mels=128, fmin=0.0, fmax=None (= sample_rate / 2), mel_scale="slaney" (slaney|htk),
            mel_norm="slaney" (slaney|none)

Frame kinds (the image modalities of a multimodal dataset; sample_rate is the frame rate, e.g. ACIVW's 12 fps,
and the dataset module provides `load_frames`, see features/frames.py):
  acoustic_image  clip_seconds, n_frames=None (as video), dtype="float32" (float32|float16), flip="none"
            (none|lr|ud|both: mirror each frame's rows/columns, as the ACIVW loader flips left-right and up-down);
            one clip: (n_frames or T, H, W, C)
  video     clip_seconds, n_frames=None (keep this many frames evenly spaced by linspace over the clip, as ACIVW's
            random_pick; None: all), short_side=None (bicubic resize so the smaller side has this many pixels,
            aspect kept; None: native size), channel_order="rgb" (rgb|bgr: the ACIVW converter stores OpenCV's
            BGR), dtype="uint8"; one clip: (n_frames, H, W, 3)

kind "stft" is a linear-frequency spectrogram (n_fft // 2 + 1 bins, e.g. ACIVW's magnitude STFT); a key
that does not apply to the spec's kind is an error, so a spec never carries settings it ignores.

Windows (all of length win_length):
  hann          periodic Hann (scipy `sym=False`), the librosa / torch default
  hamming       SYMMETRIC Hamming (`np.hamming`, scipy `sym=True`; dcase_util "hamming" / "hamming_symmetric")
  hamming_asym  PERIODIC Hamming (scipy `sym=False`; dcase_util "hamming_asymmetric", the DCASE 2018 baseline
                and SubSpectralNet; also what librosa's window="hamming" gives)
win_align: how a window shorter than n_fft sits in the FFT frame. "center": padded on both sides
(librosa, torch.stft); "left": frame of win_length samples zero-padded at the end (tf.signal.stft, ACIVW);
"left" needs center=False.

log: db = 10·log10(max(S, log_eps)) for power 2, 20·log10(max(S, log_eps)) for power 1 (librosa
power_to_db / amplitude_to_db with ref=1, amin=log_eps); top_db clips per channel at max − top_db.
ln / log10 = log(S + log_eps) (SeNoT: ln with 1e-8; dcase_util: ln with np.spacing(1)).

precision: the FFTs run in float32; "float64-where-needed" redoes with a float64 FFT the frames whose
estimated log-domain error exceeds features.logmel.LOG_ERROR_BOUND (bands far below the frame's peak), which
keeps us within librosa-on-float32-audio's own distance from librosa-on-float64-audio (`soundbench bench
features` checks that rule); "float32" never redoes (faster; up to ~0.1-0.2 log units off in those bands).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

KINDS = ("logmel", "stft", "waveform", "acoustic_image", "video")
FRAME_KINDS = ("acoustic_image", "video")
FLIPS = ("none", "lr", "ud", "both")
CHANNEL_ORDERS = ("rgb", "bgr")
FRAME_DEFAULTS = {"acoustic_image": {"clip_seconds": None, "n_frames": None, "dtype": "float32", "flip": "none"},
                  "video": {"clip_seconds": None, "n_frames": None, "short_side": None, "channel_order": "rgb",
                            "dtype": "uint8"}}
# fields added after shards were first written, with the value that reproduces the behaviour before them: left
# out of the hash at that value, so existing specs keep their hash (and their shards)
ADDED_LATER = {"flip": None, "short_side": None, "channel_order": None, "precision": "float64-where-needed"}
CHANNEL_COUNT = {"mono": 1, "left": 1, "right": 1, "stereo": 2, "lrd": 3}
PADS = ("zero", "loop", "repeat")
WINDOWS = ("hann", "hamming", "hamming_asym")
WIN_ALIGNS = ("center", "left")
PAD_MODES = ("constant", "reflect")
LOGS = ("db", "ln", "log10", "none")
MEL_SCALES = ("slaney", "htk")
MEL_NORMS = ("slaney", "none")
DTYPES = ("float32", "float16")
PRECISIONS = ("float64-where-needed", "float32")
FRAME_DTYPES = {"acoustic_image": DTYPES, "video": ("uint8",)}

COMMON_DEFAULTS = {"channels": "mono", "clip_seconds": None, "pad": "zero", "peak_norm": None, "dtype": "float32"}
SPECTRAL_DEFAULTS = {"n_fft": 2048, "win_length": None, "hop_length": 512, "window": "hann", "win_align": "center",
                     "center": True, "pad_mode": "constant", "power": 2.0, "log_eps": 1e-10, "top_db": None,
                     "n_frames": None, "precision": "float64-where-needed"}
MEL_DEFAULTS = {"n_mels": 128, "fmin": 0.0, "fmax": None, "mel_scale": "slaney", "mel_norm": "slaney"}
LOG_DEFAULT = {"logmel": "db", "stft": "none"}


def allowed_keys(kind: str) -> dict:
    """Config keys (with defaults) valid for a kind; kind and sample_rate are required and not listed."""
    if kind in FRAME_KINDS:
        return dict(FRAME_DEFAULTS[kind])
    keys = dict(COMMON_DEFAULTS)
    if kind in ("logmel", "stft"):
        keys.update(SPECTRAL_DEFAULTS, log=LOG_DEFAULT[kind])
    if kind == "logmel":
        keys.update(MEL_DEFAULTS)
    return keys


@dataclass(frozen=True)
class FeatureSpec:
    """One feature recipe. Fields that do not apply to the kind are None. `name` is not part of the hash."""

    kind: str
    sample_rate: int
    channels: str = "mono"
    clip_seconds: float | None = None
    pad: str = "zero"
    peak_norm: float | None = None
    dtype: str = "float32"
    n_fft: int | None = None
    win_length: int | None = None
    hop_length: int | None = None
    window: str | None = None
    win_align: str | None = None
    center: bool | None = None
    pad_mode: str | None = None
    power: float | None = None
    log: str | None = None
    log_eps: float | None = None
    top_db: float | None = None
    n_frames: int | None = None
    precision: str | None = None
    n_mels: int | None = None
    fmin: float | None = None
    fmax: float | None = None
    mel_scale: str | None = None
    mel_norm: str | None = None
    flip: str | None = None
    short_side: int | None = None
    channel_order: str | None = None
    name: str = field(default="", compare=False)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, name: str, cfg: dict) -> "FeatureSpec":
        """Build from a config mapping; unknown or inapplicable keys raise ValueError naming key and spec."""
        cfg = dict(cfg)
        for req in ("kind", "sample_rate"):
            if req not in cfg:
                raise ValueError(f"feature spec {name!r}: missing required key {req!r}")
        kind = cfg.pop("kind")
        if kind not in KINDS:
            raise ValueError(f"feature spec {name!r}: kind {kind!r} is not one of {KINDS}")
        sample_rate = cfg.pop("sample_rate")
        keys = allowed_keys(kind)
        for key in cfg:
            if key not in keys:
                where = "is unknown" if key not in cls.__dataclass_fields__ or key == "name" \
                    else f"does not apply to kind {kind!r}"
                raise ValueError(f"feature spec {name!r}: key {key!r} {where}")
        values = {**keys, **cfg}
        if kind in FRAME_KINDS:  # the audio fields do not apply
            values.update(channels=None, pad=None)
        return cls(kind=kind, sample_rate=sample_rate, name=name, **values)

    def __post_init__(self) -> None:
        # normalise numeric types so that equal specs hash equally (YAML gives 48000 or 48000.0, 1 or 1.0)
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        for key in ("sample_rate", "n_fft", "win_length", "hop_length", "n_frames", "n_mels", "short_side"):
            value = getattr(self, key)
            if value is not None:
                if float(value) != int(value) or int(value) <= 0:
                    self._fail(f"{key} must be a positive integer, got {value!r}")
                set_(key, int(value))
        for key in ("clip_seconds", "peak_norm", "power", "log_eps", "top_db", "fmin", "fmax"):
            value = getattr(self, key)
            if value is not None:
                set_(key, float(value))
        if self.center is not None:
            set_("center", bool(self.center))
        self._validate()

    def _fail(self, message: str):
        raise ValueError(f"feature spec {self.name or '<unnamed>'!r}: {message}")

    def _validate(self) -> None:
        if self.kind in FRAME_KINDS:
            choices = {"dtype": FRAME_DTYPES[self.kind],
                       **({"flip": FLIPS} if self.kind == "acoustic_image" else {"channel_order": CHANNEL_ORDERS})}
            for key, allowed in choices.items():
                if getattr(self, key) not in allowed:
                    self._fail(f"{key}={getattr(self, key)!r} is not one of {allowed}")
            if self.clip_seconds is not None and self.clip_seconds <= 0:
                self._fail(f"clip_seconds must be positive, got {self.clip_seconds}")
            return
        choices = {"kind": KINDS, "channels": tuple(CHANNEL_COUNT), "pad": PADS, "dtype": DTYPES}
        if self.is_spectral:
            choices.update(window=WINDOWS, win_align=WIN_ALIGNS, pad_mode=PAD_MODES, log=LOGS,
                           precision=PRECISIONS)
        if self.kind == "logmel":
            choices.update(mel_scale=MEL_SCALES, mel_norm=MEL_NORMS)
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                self._fail(f"{key}={getattr(self, key)!r} is not one of {allowed}")
        if self.clip_seconds is not None and self.clip_seconds <= 0:
            self._fail(f"clip_seconds must be positive, got {self.clip_seconds}")
        if not self.is_spectral:
            return
        if self.win_length is not None and self.win_length > self.n_fft:
            self._fail(f"win_length {self.win_length} > n_fft {self.n_fft}")
        if self.win_align == "left" and self.center:
            self._fail("win_align='left' (tf.signal.stft framing) needs center=False")
        if self.power not in (1.0, 2.0):
            self._fail(f"power must be 1.0 (magnitude) or 2.0 (power), got {self.power}")
        if self.top_db is not None and self.log != "db":
            self._fail("top_db only applies to log='db'")
        if self.log != "none" and (self.log_eps is None or self.log_eps <= 0):
            self._fail(f"log_eps must be positive for log={self.log!r}")
        if self.kind == "logmel" and self.fmax is not None and self.fmax > self.sample_rate / 2:
            self._fail(f"fmax {self.fmax} is above the Nyquist frequency {self.sample_rate / 2}")

    # -- derived values -----------------------------------------------------------------------------
    @property
    def is_spectral(self) -> bool:
        return self.kind in ("logmel", "stft")

    @property
    def is_frames(self) -> bool:
        return self.kind in FRAME_KINDS

    @property
    def n_channels(self) -> int:
        return CHANNEL_COUNT[self.channels]

    @property
    def n_bins(self) -> int:
        """Frequency rows of a spectral feature: n_mels (logmel) or n_fft // 2 + 1 (stft)."""
        return self.n_mels if self.kind == "logmel" else self.n_fft // 2 + 1

    @property
    def n_samples(self) -> int:
        """Samples per clip after fit_length (needs a resolved clip_seconds)."""
        if self.clip_seconds is None:
            self._fail("clip_seconds is unresolved; call spec.resolved(dataset_clip_seconds) first")
        return int(round(self.clip_seconds * self.sample_rate))

    def resolved(self, clip_seconds: float | None = None) -> "FeatureSpec":
        """A copy with defaults made explicit: clip_seconds (spec's own, else the given dataset nominal
        length), win_length (= n_fft), fmax (= sample_rate / 2)."""
        changes: dict = {}
        if self.clip_seconds is None and clip_seconds is not None:
            changes["clip_seconds"] = float(clip_seconds)
        if self.is_spectral and self.win_length is None:
            changes["win_length"] = self.n_fft
        if self.kind == "logmel" and self.fmax is None:
            changes["fmax"] = self.sample_rate / 2
        return dataclasses.replace(self, **changes) if changes else self

    def fields(self) -> dict:
        """The hashed fields (everything but name), as plain JSON-able values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "name"
                and not (f.name in ADDED_LATER and getattr(self, f.name) == ADDED_LATER[f.name])}

    def to_json(self) -> str:
        """Canonical JSON of the fields plus the name (stored in shard attributes)."""
        return json.dumps({**self.fields(), "name": self.name}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_fields(cls, fields: dict, name: str | None = None) -> "FeatureSpec":
        """The spec of stored fields (`fields()` / `to_json()` output: shards, predictions.h5)."""
        fields = dict(fields)
        for key, value in ADDED_LATER.items():  # left out when stored at their earlier behaviour
            if key not in fields and key in allowed_keys(fields["kind"]):
                fields[key] = value
        if name is not None:
            fields["name"] = name
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        return cls.from_fields(json.loads(text))

    def hash(self) -> str:
        """First 16 hex digits of sha256 over the canonical JSON of the resolved fields (name excluded).

        clip_seconds must be resolved: features of a 10-s and a 30-s clip are different data."""
        spec = self.resolved()
        if spec.clip_seconds is None:
            self._fail("clip_seconds is unresolved; hash spec.resolved(dataset_clip_seconds) instead")
        canonical = json.dumps(spec.fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def frames_for(self, n_samples: int) -> int:
        """STFT frames a signal of n_samples yields (before the n_frames cut)."""
        if self.center:
            return 1 + n_samples // self.hop_length
        frame = self.resolved().win_length if self.win_align == "left" else self.n_fft
        return 0 if n_samples < frame else 1 + (n_samples - frame) // self.hop_length

    def output_shape(self, n_samples: int | None = None) -> tuple[int, ...]:
        """Shape of one clip's feature: (C, n_samples) for waveform, (C, n_bins, T) for spectral kinds.

        n_samples defaults to the spec's own clip length."""
        if self.is_frames:
            self._fail(f"the shape of a {self.kind} clip depends on the dataset's frames (features/frames.py)")
        n = self.n_samples if n_samples is None else int(n_samples)
        if not self.is_spectral:
            return (self.n_channels, n)
        frames = self.n_frames if self.n_frames is not None else self.frames_for(n)
        return (self.n_channels, self.n_bins, frames)

    def valid_length(self, n_valid_samples: int) -> int:
        """Valid extent along the last axis for a clip with n_valid_samples real (unpadded) samples."""
        n = min(int(n_valid_samples), self.n_samples)
        if not self.is_spectral:
            return n
        frames = self.frames_for(n)
        return frames if self.n_frames is None else min(frames, self.n_frames)
