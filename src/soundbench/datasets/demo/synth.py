"""Signal generators shared by the demo synthesisers (soundbench/datasets/demo/<name>.py).

Design rule: every demo class set is learnable but NOT solvable from time-pooled statistics. Most classes
come in PAIRS that share their spectral content and differ only in temporal order: the second member of a
pair is the first one played backwards (a rising chirp against a falling one, a struck note against a
swelling one, a tone sequence A-B-C against C-B-A, crackles with a sharp attack against crackles with a sharp
release). Time reversal leaves every per-band mean and standard deviation of a spectrogram unchanged, so a
model that pools statistics over time can tell the pair from the other pairs but not its two members apart
(at best ~half of a pair-structured class set), while a small CNN that sees local time-frequency patterns can.
Everything is placed under random pitch, duration, onset and gain, on background noise at a random SNR,
with distractor sounds that belong to no class.

All generators are vectorised numpy, take an explicit `np.random.Generator` and return float64 arrays
(samples,) or (channels, samples) roughly in [-1, 1]; nothing here writes files.
"""
from __future__ import annotations

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft, rfftfreq

TWO_PI = 2.0 * np.pi


# ================================================================================ basic helpers

def nsamp(seconds: float, sr: int) -> int:
    return max(1, int(round(seconds * sr)))


def db(x: float) -> float:
    """dB -> amplitude factor."""
    return float(10.0 ** (x / 20.0))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def add_at(dst: np.ndarray, src: np.ndarray, start: int) -> None:
    """dst[..., start:start+len(src)] += src, clipped to dst (start may be negative)."""
    n = dst.shape[-1]
    a, b = max(start, 0), min(start + src.shape[-1], n)
    if b > a:
        dst[..., a:b] += src[..., a - start:b - start]


def fades(n: int, sr: int, fade_in: float = 0.005, fade_out: float = 0.005) -> np.ndarray:
    """A window of ones with raised-cosine fades at both ends."""
    w = np.ones(n)
    a, b = min(n // 2, nsamp(fade_in, sr)), min(n // 2, nsamp(fade_out, sr))
    if a > 0:
        w[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    if b > 0:
        w[n - b:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, b + 1) / b)
    return w


def perc_env(n: int, sr: int, attack: float, tau: float) -> np.ndarray:
    """Fast linear attack, exponential decay with time constant tau (s), faded to exactly 0 at the end."""
    t = np.arange(n) / sr
    a = max(attack, 1.0 / sr)
    env = np.where(t < a, t / a, np.exp(-(t - a) / max(tau, 1e-3)))
    return env * fades(n, sr, 0.0, min(0.01, n / sr / 4))


# ================================================================================ oscillators

def phase_of(freq, sr: int, n: int | None = None) -> np.ndarray:
    """Running phase (radians) of a frequency track in Hz (array, or a constant with length n)."""
    f = np.full(n, float(freq)) if np.ndim(freq) == 0 else np.asarray(freq, float)
    return TWO_PI * np.cumsum(f) / sr


def harmonics(f0, sr: int, weights, n: int | None = None, rng: np.random.Generator | None = None,
              stretch: float = 0.0) -> np.ndarray:
    """Sum of partials k*f0 (k = 1..len(weights)) with the given weights; partials above 0.45*sr are muted.

    weights: (K,) constant or (K, n) time-varying. rng: draws a random starting phase. stretch:
    inharmonicity (partial k at k*(1+stretch*k^2)). Harmonic partials use the Chebyshev recurrence
    sin((k+1)p) = 2 cos(p) sin(kp) - sin((k-1)p), one sine evaluation for all partials.
    """
    f0 = np.full(n, float(f0)) if np.ndim(f0) == 0 else np.asarray(f0, float)
    ph = phase_of(f0, sr)
    if rng is not None:
        ph += rng.uniform(0, TWO_PI)
    ph = np.mod(ph, TWO_PI).astype(np.float32)  # float32 from here: the recurrence error stays below -70 dB
    w = np.asarray(weights, np.float32)
    K = w.shape[0]
    lim = 0.45 * sr
    fmax, fmin = float(f0.max()), float(f0.min())
    out = np.zeros(len(f0), np.float32)
    if stretch:
        for k in range(1, K + 1):
            m = k * (1.0 + stretch * k * k)
            if m * fmin >= lim:
                break
            s = np.sin(np.float32(m) * ph)
            if m * fmax >= lim:
                s *= (m * f0) < lim
            out += w[k - 1] * s
        return out.astype(np.float64)
    s_prev = np.zeros(len(f0), np.float32)
    s = np.sin(ph)
    c2 = np.float32(2.0) * np.cos(ph)
    tmp = np.empty_like(s)
    for k in range(1, K + 1):
        if k > 1:
            np.multiply(c2, s, out=tmp)
            tmp -= s_prev
            s_prev, s, tmp = s, tmp, s_prev
        if k * fmin >= lim:
            break
        term = s if k * fmax < lim else s * ((k * f0) < lim)
        out += w[k - 1] * term
    return out.astype(np.float64)


def shaped_noise(rng: np.random.Generator, n: int, sr: int, gain) -> np.ndarray:
    """White noise shaped in the frequency domain by gain(freqs_hz) -> amplitude; unit RMS."""
    m = next_fast_len(n, real=True)
    spec = rfft(rng.standard_normal(m, dtype=np.float32))
    f = rfftfreq(m, 1.0 / sr).astype(np.float32)
    y = irfft(spec * gain(f).astype(np.float32), m)[:n].astype(np.float64)
    return y / rms(y)


def band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float, slope_db_oct: float = 0.0,
               edge: float = 0.15) -> np.ndarray:
    """Noise between lo and hi Hz (soft edges of `edge` octaves), optional spectral tilt; unit RMS."""
    hi = min(hi, 0.48 * sr)
    lo = max(lo, 10.0)

    def gain(f):
        lf = np.log2(np.maximum(f, 1.0))
        g = np.clip((lf - np.log2(lo)) / edge + 1, 0, 1) * np.clip((np.log2(hi) - lf) / edge + 1, 0, 1)
        return g * (np.maximum(f, lo) / lo) ** (slope_db_oct / 6.02)

    return shaped_noise(rng, n, sr, gain)


def colored_noise(rng: np.random.Generator, n: int, sr: int, slope_db_oct: float = -3.0,
                  lo: float = 30.0, hi: float | None = None, bumps=()) -> np.ndarray:
    """Broadband background noise with a spectral tilt and optional resonant bumps (centre_hz, gain_db, octaves)."""
    hi = 0.48 * sr if hi is None else hi

    def gain(f):
        ff = np.maximum(f, 1.0)
        g = (ff / 1000.0) ** (slope_db_oct / 6.02) * (f > lo * 0.7) * (f < hi)
        for c, gdb, width in bumps:
            g = g * (1 + (db(gdb) - 1) * np.exp(-0.5 * (np.log2(ff / c) / width) ** 2))
        return g

    return shaped_noise(rng, n, sr, gain)


def interp_rows(ctrl: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of control-rate rows (K, m) to (K, n) samples."""
    m = ctrl.shape[-1]
    pos = np.linspace(0, m - 1, n)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, m - 1)
    w = pos - i0
    return ctrl[..., i0] * (1 - w) + ctrl[..., i1] * w


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average (Hann kernel) along the last axis, edge-padded."""
    if width <= 1:
        return x
    k = np.hanning(width + 2)[1:-1]
    k /= k.sum()
    pad = width // 2
    xp = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, width - 1 - pad)], mode="edge")
    if x.ndim == 1:
        return np.convolve(xp, k, mode="valid")
    return np.stack([np.convolve(r, k, mode="valid") for r in xp])


# ================================================================================ event families
# Each family draws ONE event in its "forward" form; `reverse=True` plays it backwards (the pair partner).
# `f` is the register (Hz) of the family at the class's nominal pitch; callers jitter it.

def ev_sweep(rng, sr, dur, f, ratio=2.0, n_harm=4, bright=0.55, noise=0.0):
    """A harmonic glide from f up to f*ratio (a chirp, a bark, a bird call); reversed: a falling glide."""
    n = nsamp(dur, sr)
    t = np.linspace(0, 1, n)
    f0 = f * ratio ** (t ** rng.uniform(0.7, 1.3))
    w = bright ** np.arange(n_harm)
    x = harmonics(f0, sr, w, rng=rng)
    if noise > 0:
        x = x / rms(x) + noise * band_noise(rng, n, sr, f, f * ratio * 4)
    return x * fades(n, sr, 0.01, 0.03)


def ev_strike(rng, sr, dur, f, chord=(1.0, 1.26, 1.5), n_harm=5, bright=0.6, tau=0.25, stretch=0.0):
    """A struck chord/bell: instant attack, exponential decay (tau as a fraction of dur); reversed: a swell."""
    n = nsamp(dur, sr)
    w = bright ** np.arange(n_harm)
    x = sum(harmonics(f * c, sr, w, n=n, rng=rng, stretch=stretch) for c in chord)
    return x * perc_env(n, sr, 0.003, tau * dur)


def ev_steps(rng, sr, dur, f, steps=(1.0, 1.335, 1.782), duty=0.8, n_harm=3, bright=0.4):
    """A rising tone sequence repeated over dur (beeps, alarms); reversed: the falling sequence."""
    n = nsamp(dur, sr)
    cycles = max(1, int(round(dur / (0.22 * len(steps)))))
    per = n / (cycles * len(steps))
    idx = np.minimum((np.arange(n) / per).astype(int), cycles * len(steps) - 1)
    within = (np.arange(n) - idx * per) / per
    f0 = f * np.asarray(steps)[idx % len(steps)]
    gate = smooth((within < duty).astype(float), max(1, nsamp(0.004, sr)))
    x = harmonics(f0, sr, bright ** np.arange(n_harm), rng=rng) * gate
    return x * fades(n, sr, 0.003, 0.003)


def ev_sawsiren(rng, sr, dur, f, ratio=1.7, period=0.45, rise=0.8, n_harm=4, bright=0.5):
    """Repeated sweeps, slow rise and fast drop (a wailing siren); reversed: fast rise, slow fall."""
    n = nsamp(dur, sr)
    p = period * rng.uniform(0.85, 1.15)
    ph = (np.arange(n) / sr / p + rng.uniform(0, 1)) % 1.0
    g = np.where(ph < rise, ph / rise, 1 - (ph - rise) / (1 - rise))
    f0 = f * ratio ** g
    x = harmonics(f0, sr, bright ** np.arange(n_harm), rng=rng)
    return x * fades(n, sr, 0.02, 0.02)


def ev_crackle(rng, sr, dur, lo, hi, rate=12.0, tau=0.012, sustain=0.15):
    """Random noise clicks with a sharp attack and a decaying tail (frying, rattling, clacks), on a faint bed
    of the same noise; reversed: clicks that swell and stop dead."""
    n = nsamp(dur, sr)
    count = max(1, rng.poisson(rate * dur))
    times = np.sort(rng.integers(0, n, count))
    gains = rng.uniform(0.3, 1.0, count)
    kern = perc_env(nsamp(6 * tau, sr), sr, 0.0005, tau)
    env = np.zeros(n)
    for t0, g in zip(times, gains):
        add_at(env, g * kern, int(t0))
    x = band_noise(rng, n, sr, lo, hi) * (env + sustain)
    return x * fades(n, sr, 0.01, 0.01)


def ev_am_noise(rng, sr, dur, lo, hi, rate=6.0, depth=0.85, tau=0.35, whine=0.0, whine_f=400.0):
    """Band noise with a sawtooth amplitude modulation (sharp onset, decay within each cycle), optionally with
    a motor whine (vacuum, blender, engine); reversed: slow rise and sharp drop per cycle."""
    n = nsamp(dur, sr)
    t = np.arange(n) / sr
    cyc = (t * rate * rng.uniform(0.9, 1.1) + rng.uniform(0, 1)) % 1.0
    mod = 1 - depth + depth * np.exp(-cyc / tau)
    x = band_noise(rng, n, sr, lo, hi, slope_db_oct=-2.0) * mod
    if whine > 0:
        f0 = whine_f * (1 + 0.01 * np.sin(TWO_PI * 3 * t))
        x = x + whine * harmonics(f0, sr, [1.0, 0.5, 0.3], rng=rng) * mod
    return x * fades(n, sr, 0.02, 0.02)


def ev_buzz(rng, sr, dur, f, am_rate=30.0, n_harm=12):
    """A buzzing odd-harmonic tone with fast tremolo (shaver, razor, insect); symmetric, no pair."""
    n = nsamp(dur, sr)
    t = np.arange(n) / sr
    w = np.array([1.0 / k if k % 2 else 0.15 / k for k in range(1, n_harm + 1)])
    x = harmonics(f * (1 + 0.004 * np.sin(TWO_PI * 5 * t)), sr, w, rng=rng)
    x *= 0.75 + 0.25 * np.sin(TWO_PI * am_rate * t)
    return x * fades(n, sr, 0.02, 0.02)


def ev_rumble(rng, sr, dur, f, n_harm=6):
    """A low engine: harmonic hum on low-passed noise; symmetric, no pair."""
    n = nsamp(dur, sr)
    t = np.arange(n) / sr
    f0 = f * (1 + 0.03 * np.sin(TWO_PI * rng.uniform(0.2, 0.6) * t + rng.uniform(0, TWO_PI)))
    x = harmonics(f0, sr, 0.7 ** np.arange(n_harm), rng=rng)
    x = x / rms(x) + 0.8 * band_noise(rng, n, sr, 30, 6 * f, slope_db_oct=-4)
    return x * fades(n, sr, 0.05, 0.05)


FAMILIES = {"sweep": ev_sweep, "strike": ev_strike, "steps": ev_steps, "sawsiren": ev_sawsiren,
            "crackle": ev_crackle, "am_noise": ev_am_noise, "buzz": ev_buzz, "rumble": ev_rumble}


class EventClass:
    """A sound class: a family, its parameters at nominal pitch, how much pitch/duration vary, and whether it
    is the time-reversed member of a pair. Pitch-like parameters (`f`, `lo`, `hi`, `whine_f`) are jittered."""

    PITCHED = ("f", "lo", "hi", "whine_f")

    def __init__(self, family: str, reverse: bool = False, dur=(0.3, 0.8), jitter: float = 0.12, **params):
        self.family, self.reverse, self.dur, self.jitter, self.params = family, reverse, dur, jitter, params

    def draw(self, rng: np.random.Generator, sr: int, dur: float | None = None) -> np.ndarray:
        d = rng.uniform(*self.dur) if dur is None else dur
        p = dict(self.params)
        scale = 2.0 ** rng.uniform(-self.jitter, self.jitter)
        for k in self.PITCHED:
            if k in p:
                p[k] = p[k] * scale
        x = FAMILIES[self.family](rng, sr, d, **p)
        x = x / rms(x)
        return x[::-1].copy() if self.reverse else x


def pair(family: str, dur=(0.3, 0.8), jitter: float = 0.12, **params) -> tuple[EventClass, EventClass]:
    """A forward class and its time-reversed partner."""
    return (EventClass(family, False, dur, jitter, **params), EventClass(family, True, dur, jitter, **params))


# Distractors: sounds of no class, mixed into clips at random.
DISTRACTORS = (
    EventClass("strike", dur=(0.15, 0.4), jitter=0.5, f=900.0, chord=(1.0, 2.7), n_harm=2, bright=0.3, tau=0.15,
               stretch=0.002),
    EventClass("crackle", dur=(0.2, 0.6), jitter=0.5, lo=300.0, hi=3000.0, rate=20.0, sustain=0.05),
    EventClass("rumble", dur=(0.5, 1.5), jitter=0.4, f=70.0),
    EventClass("sweep", dur=(0.1, 0.3), jitter=0.6, f=1500.0, ratio=1.0, n_harm=2),  # a steady short tone
)


def distractor(rng: np.random.Generator, sr: int) -> np.ndarray:
    return DISTRACTORS[rng.integers(len(DISTRACTORS))].draw(rng, sr)


def background(rng: np.random.Generator, n: int, sr: int, kind: str = "generic") -> np.ndarray:
    """Unit-RMS background noise of a few kinds (random tilt and resonances)."""
    if kind == "traffic":
        return colored_noise(rng, n, sr, slope_db_oct=rng.uniform(-6, -4), lo=25,
                             bumps=((rng.uniform(60, 120), rng.uniform(4, 10), 0.6),))
    if kind == "room":
        return colored_noise(rng, n, sr, slope_db_oct=rng.uniform(-5, -2), lo=40,
                             bumps=((rng.uniform(200, 600), rng.uniform(2, 6), 1.0),))
    return colored_noise(rng, n, sr, slope_db_oct=rng.uniform(-6, 0), lo=rng.uniform(20, 100))


# ================================================================================ multi-label event clips

def event_clip(rng: np.random.Generator, sr: int, seconds: float, classes: dict[str, EventClass],
               n_events=(1, 3), snr_db=(3.0, 20.0), distractors: float = 0.8, bg_kind: str = "generic",
               min_event: float = 0.25, min_gap: float = 0.15, max_tries: int = 50,
               force: list[str] | None = None, event_seconds: tuple[float, float] | None = None):
    """A mono clip with 1-3 events of the given classes at random times over background noise.

    Returns (wave, events) with events = [(onset_s, offset_s, class_name)], the TRUE extents of the events
    (each event's waveform is non-zero exactly there). Events of one class never overlap and are >= min_gap
    apart (so a strong label never merges two of them); every event is >= min_event long.
    force: class names that must occur (the rest drawn at random).
    """
    n = nsamp(seconds, sr)
    names = list(classes)
    k = int(rng.integers(n_events[0], n_events[1] + 1))
    chosen = list(force or [])
    while len(chosen) < k:
        chosen.append(names[rng.integers(len(names))])
    events: list[tuple[float, float, str]] = []
    sig = np.zeros(n)
    for name in chosen:
        ec = classes[name]
        for _ in range(max_tries):
            lo, hi = ec.dur if event_seconds is None else event_seconds
            d = min(max(rng.uniform(lo, hi), min_event), seconds)
            n_ev = nsamp(d, sr)
            start = int(rng.integers(0, n - n_ev + 1))
            on, off = start / sr, (start + n_ev) / sr
            if all(c != name or off + min_gap <= a or on >= b + min_gap for a, b, c in events):
                break
        else:
            continue
        x = ec.draw(rng, sr, n_ev / sr)[:n_ev]
        add_at(sig, x * db(rng.uniform(-6, 0)), start)
        events.append((on, off, name))
    if not events:  # every placement collided: fall back to one event over the whole clip
        name = chosen[0]
        sig = classes[name].draw(rng, sr, seconds)[:n]
        events = [(0.0, n / sr, name)]
    noise = background(rng, n, sr, bg_kind)
    for _ in range(rng.poisson(distractors)):
        x = distractor(rng, sr)[: n // 2]
        add_at(noise, x * db(rng.uniform(-4, 4)), int(rng.integers(0, n - len(x) + 1)))
    level = rms(sig[np.abs(sig) > 0]) if np.any(sig) else 1.0
    noise *= level / rms(noise) * db(-rng.uniform(*snr_db))
    out = sig + noise
    out *= db(rng.uniform(-20, -8)) / max(np.max(np.abs(out)), 1e-9)  # peak between -20 and -8 dBFS
    return out, sorted(events)


# ================================================================================ speech-like words
# Phones: formant targets (Hz) for voiced phones; noise bands for fricatives and stop bursts.
# kind: V vowel, G glide/liquid, N nasal, F fricative, S stop (closure + burst).
PHONES = {
    "i": ("V", (280, 2250, 2900)), "e": ("V", (480, 1950, 2600)), "ae": ("V", (680, 1700, 2450)),
    "a": ("V", (760, 1150, 2500)), "o": ("V", (520, 860, 2450)), "u": ("V", (320, 880, 2250)),
    "uh": ("V", (620, 1220, 2500)), "er": ("V", (480, 1330, 1680)),
    "y": ("G", (270, 2200, 3000)), "w": ("G", (300, 640, 2200)), "l": ("G", (380, 1000, 2600)),
    "r": ("G", (420, 1150, 1550)), "n": ("N", (260, 1500, 2600)), "m": ("N", (260, 1100, 2300)),
    "s": ("F", (4200, 7600)), "sh": ("F", (2100, 5200)), "f": ("F", (1200, 7000)), "h": ("F", (600, 4000)),
    "p": ("S", (400, 2000)), "t": ("S", (3000, 6500)), "k": ("S", (1400, 3500)),
    "d": ("S", (2500, 5500)), "g": ("S", (1200, 3000)), "b": ("S", (300, 1500)),
}
# nominal durations (s) and levels per kind
_PHONE_DUR = {"V": 0.15, "G": 0.07, "N": 0.08, "F": 0.12, "S": 0.07}
_PHONE_VOICE = {"V": 1.0, "G": 0.55, "N": 0.25, "F": 0.0, "S": 0.0}

# The 10 classic keyword-spotting words of Speech Commands v0.02, in 5 pairs: the second word of each pair
# is the first word's phone sequence in reverse order (each phone itself is still produced forwards).
WORD_PAIRS = (("yes", "no", ("y", "e", "s")),
              ("up", "down", ("d", "a", "u", "n")),
              ("left", "right", ("l", "ae", "f", "t")),
              ("on", "off", ("er", "n", "i")),
              ("stop", "go", ("sh", "t", "o", "p")))
WORDS = {}
for _a, _b, _ph in WORD_PAIRS:
    WORDS[_a] = _ph
    WORDS[_b] = tuple(reversed(_ph))
# further real v0.02 words (for more classes): their own distinct phone strings, no pair structure
EXTRA_WORDS = {"zero": ("s", "i", "r", "o"), "one": ("w", "uh", "n"), "two": ("t", "u"), "three": ("h", "r", "i"),
               "four": ("f", "o", "r"), "five": ("f", "a", "i", "f"), "six": ("s", "i", "k", "s"),
               "seven": ("s", "e", "f", "uh", "n"), "eight": ("e", "i", "t"), "nine": ("n", "a", "i", "n")}


def speaker(rng: np.random.Generator) -> dict:
    """Random speaker traits: pitch, vocal-tract scale, speaking rate, breathiness."""
    female = rng.random() < 0.5
    return {"f0": rng.uniform(165, 260) if female else rng.uniform(85, 150),
            "scale": rng.uniform(1.02, 1.18) if female else rng.uniform(0.86, 1.02),
            "rate": rng.uniform(0.8, 1.25), "breath": rng.uniform(0.01, 0.06)}


def say(rng: np.random.Generator, sr: int, phones, spk: dict, ctrl_rate: int = 1000) -> np.ndarray:
    """Formant-synthesised utterance of a phone sequence (harmonic source through 3 moving formants, band
    noise for fricatives and stop bursts); unit RMS, starts and ends at 0."""
    kinds = [PHONES[p][0] for p in phones]
    durs = np.array([_PHONE_DUR[k] for k in kinds]) * spk["rate"] * rng.uniform(0.8, 1.2, len(phones))
    bounds = np.concatenate([[0], np.cumsum(durs)])
    total = bounds[-1] + 0.04
    m = int(np.ceil(total * ctrl_rate))
    n = nsamp(total, sr)
    seg = np.minimum(np.searchsorted(bounds, np.arange(m) / ctrl_rate, side="right") - 1, len(phones) - 1)
    # formant targets: voiced phones use their own, unvoiced ones borrow the nearest voiced neighbour
    targets = []
    for i, (p, k) in enumerate(zip(phones, kinds)):
        if k in "VGN":
            targets.append(PHONES[p][1])
        else:
            near = sorted((abs(j - i), j) for j, kk in enumerate(kinds) if kk in "VGN")
            targets.append(PHONES[phones[near[0][1]]][1] if near else (500, 1500, 2500))
    F = np.array(targets, float)[seg].T * spk["scale"]  # (3, m)
    F = smooth(F, int(0.04 * ctrl_rate))
    voice = smooth(np.array([_PHONE_VOICE[k] for k in kinds])[seg], int(0.02 * ctrl_rate))
    tt = np.arange(m) / m
    # intonation: a rise-fall over the utterance (symmetric in time, so it gives no order cue), slight wobble
    f0c = spk["f0"] * (0.94 + 0.12 * np.sin(np.pi * tt)) * (1 + 0.015 * np.sin(TWO_PI * rng.uniform(3, 6) * tt * total
                                                                               + rng.uniform(0, TWO_PI)))
    K = int(min(5200, 0.45 * sr) / (spk["f0"] * 0.8))
    k = np.arange(1, K + 1)[:, None]
    h = k * f0c[None, :]  # (K, m) partial frequencies
    bw = np.array([90.0, 120.0, 180.0])[:, None, None] * (1 + F[:, None, :] / 3000)
    res = 1.0 / np.sqrt(1 + ((h[None] - F[:, None, :]) / (bw / 2)) ** 2)  # (3, K, m)
    amp = (res * np.array([1.0, 0.7, 0.35])[:, None, None]).sum(0) / k ** 0.7 * voice[None, :]
    f0s = interp_rows(f0c[None, :], n)[0]
    x = harmonics(f0s, sr, interp_rows(amp, n), rng=rng)
    x = x / rms(x)
    # breath noise under voicing
    x += spk["breath"] * 4 * band_noise(rng, n, sr, 400, 5000) * interp_rows(voice[None, :], n)[0]
    # fricatives and stop bursts
    for i, (p, kd) in enumerate(zip(phones, kinds)):
        a, b = nsamp(bounds[i], sr), nsamp(bounds[i + 1], sr)
        if kd == "F":
            lo, hi = PHONES[p][1]
            seg_n = b - a
            add_at(x, 0.55 * band_noise(rng, seg_n, sr, lo, hi) * fades(seg_n, sr, 0.02, 0.02), a)
        elif kd == "S":
            lo, hi = PHONES[p][1]
            bl = nsamp(0.018, sr)
            start = max(a, b - bl)
            x[a:start] *= 0.05  # closure
            add_at(x, 1.2 * band_noise(rng, bl, sr, lo, hi) * perc_env(bl, sr, 0.001, 0.006), start)
    return x * fades(n, sr, 0.01, 0.02) / rms(x)


# ================================================================================ music (MagnaTagATune)

MUSIC_PROFILE_KEYS = (0.0, 2, 4, 5, 7, 9, 11, 12)  # major scale degrees (semitones)


MUSIC_PARTIALS = np.array([1.0, 0.6, 0.45, 0.3, 0.22, 0.15, 0.1, 0.07])


def _note_wave(rng, sr, f, n, kind):
    """One note of an instrument kind. The melodic instruments share one set of partials (MUSIC_PARTIALS) and
    differ in time: piano strikes and decays, strings are the piano note reversed (swell); guitar is a quick
    rising two-note strum that decays fast; synth opens its brightness during a struck note and pad is the
    synth note reversed (swell, closing brightness). Only the distorted rock guitar has its own timbre."""
    if kind in ("piano", "strings"):
        x = harmonics(f, sr, MUSIC_PARTIALS, n=n, rng=rng) * perc_env(n, sr, 0.004, 0.3 * n / sr)
        return x[::-1].copy() if kind == "strings" else x
    if kind == "guitar":
        lag = min(nsamp(0.03, sr), n // 4)
        x = harmonics(f, sr, MUSIC_PARTIALS, n=n, rng=rng) * perc_env(n, sr, 0.002, 0.15 * n / sr + 0.04)
        add_at(x, 0.7 * harmonics(f * 1.5, sr, MUSIC_PARTIALS, n=n - lag, rng=rng)
               * perc_env(n - lag, sr, 0.002, 0.15 * n / sr + 0.04), lag)
        return x
    if kind in ("synth", "pad"):
        t = np.linspace(0, 1, n)
        k = np.arange(len(MUSIC_PARTIALS))[:, None]
        w = MUSIC_PARTIALS[:, None] * np.exp(-k * 1.5 * (1.0 - t[None, :]))
        x = harmonics(f, sr, w, n=n, rng=rng) * perc_env(n, sr, 0.003, 0.5 * n / sr)
        return x[::-1].copy() if kind == "pad" else x
    if kind == "dist_guitar":
        x = harmonics(f, sr, [1.0, 0.5, 0.3], n=n, rng=rng) + harmonics(f * 1.5, sr, [0.8, 0.4], n=n, rng=rng)
        return np.tanh(4 * x) * perc_env(n, sr, 0.003, 0.5 * n / sr)
    if kind == "vocal":
        vowel = ("a", "o", "e", "u")[rng.integers(4)]
        spk = {"f0": f, "scale": 1.0 if f < 200 else 1.12, "rate": 1.0, "breath": 0.02}
        y = say(rng, sr, (vowel, vowel, vowel), spk)
        return np.interp(np.linspace(0, len(y) - 1, n), np.arange(len(y)), y)
    raise ValueError(kind)


def _drums(rng, sr, n, beat, pattern):
    """A drum track: 'four' (kick on every beat, off-beat hats: techno) or 'rock' (kick 1&3, snare 2&4, hats).
    The hits are scaled in time with the beat, so the share of time a drum sounds does not give the tempo away
    (time-pooled statistics do not change with it; its periodicity does)."""
    out = np.zeros(n)
    sc = beat / 0.5
    kl, sl, hl = nsamp(0.25 * sc, sr), nsamp(0.18 * sc, sr), nsamp(0.06 * sc, sr)
    tk = np.arange(kl) / sr
    kick = np.sin(TWO_PI * np.cumsum(50 + 110 * np.exp(-tk / (0.03 * sc))) / sr) * perc_env(kl, sr, 0.001, 0.08 * sc)
    snare = (0.7 * band_noise(rng, sl, sr, 1200, 6000) + 0.5 * np.sin(TWO_PI * 190 * np.arange(sl) / sr)) \
        * perc_env(sl, sr, 0.001, 0.05 * sc)
    hat = band_noise(rng, hl, sr, 4500, 7800) * perc_env(hl, sr, 0.0005, 0.015 * sc)
    nbeats = int(n / sr / beat) + 1
    for b in range(nbeats):
        t0 = int(b * beat * sr)
        if pattern == "four" or b % 2 == 0:
            add_at(out, kick * 0.9, t0)
        if pattern == "rock" and b % 2 == 1:
            add_at(out, snare * 0.6, t0)
        add_at(out, hat * 0.25, t0 + int(beat * sr / 2))
    return out


# genre -> (prior, tempo range bpm, instrument probabilities)
MUSIC_GENRES = {
    "classical": (0.30, (55, 165), {"piano": 0.6, "strings": 0.6, "vocal": 0.08}),
    "techno": (0.18, (60, 165), {"synth": 1.0, "drums4": 1.0}),
    "rock": (0.20, (55, 165), {"dist_guitar": 1.0, "drums": 1.0, "vocal": 0.4}),
    "ambient": (0.17, (50, 120), {"pad": 1.0, "piano": 0.3}),
    "pop": (0.15, (55, 165), {"guitar": 0.6, "piano": 0.5, "vocal": 1.0, "drums": 0.7}),
}


def music_clip(rng: np.random.Generator, sr: int, seconds: float, song: dict):
    """A clip of a synthetic song. `song` (from music_song) fixes genre, key, tempo and instrumentation, so all
    clips of a song share them. Returns (wave, true_tags)."""
    n = nsamp(seconds, sr)
    beat = 60.0 / song["bpm"]
    out = np.zeros(n)
    inst = song["instruments"]
    root = song["root"]
    scale = np.array(MUSIC_PROFILE_KEYS)
    for name in inst:
        if name in ("drums", "drums4"):
            out += 0.9 * _drums(rng, sr, n, beat, "four" if name == "drums4" else "rock")
            continue
        if name == "vocal":
            step, reg = 2 * beat, 2.0 if song["female"] else 1.0
        elif name in ("pad",):
            step, reg = 4 * beat, 1.0
        elif name == "synth":
            step, reg = beat / 2, 0.5
        elif name == "dist_guitar":
            step, reg = beat / 2, 0.5
        else:
            step, reg = beat, 2.0 if name == "strings" and song["violin"] else 1.0
        t, layer = rng.uniform(0, step / 2) if name != "synth" else 0.0, np.zeros(n)
        while t < seconds:
            deg = scale[rng.integers(len(scale))]
            f = root * reg * 2 ** (deg / 12.0)
            ln = nsamp(step * (0.95 if name not in ("pad",) else 1.3), sr)
            add_at(layer, _note_wave(rng, sr, f, ln, name) * rng.uniform(0.6, 1.0), int(t * sr))
            t += step
        out += layer / rms(layer) * {"vocal": 0.8, "pad": 0.6}.get(name, 0.5)
    out += 0.02 * colored_noise(rng, n, sr, -3)
    out *= db(rng.uniform(-12, -3)) / max(np.max(np.abs(out)), 1e-9)
    return out, set(song["tags"])


def music_genre(rng: np.random.Generator) -> str:
    names = list(MUSIC_GENRES)
    prior = np.array([MUSIC_GENRES[g][0] for g in names])
    return names[rng.choice(len(names), p=prior / prior.sum())]


def music_song(rng: np.random.Generator, genre: str | None = None) -> dict:
    """Draw a song (of a genre, else a random one): tempo, key, instruments, and the tags a careful annotator
    would give it (the dataset module then drops some, as the real crowd annotation misses many)."""
    genre = music_genre(rng) if genre is None else genre
    _, (lo, hi), probs = MUSIC_GENRES[genre]
    bpm = rng.uniform(lo, hi)
    inst = [i for i, p in probs.items() if rng.random() < p]
    if genre == "classical" and not ({"piano", "strings"} & set(inst)):
        inst.append("piano" if rng.random() < 0.5 else "strings")
    if genre == "pop" and not ({"piano", "guitar"} & set(inst)):
        inst.append("guitar")
    female = bool(rng.random() < 0.5)
    violin = bool("strings" in inst and rng.random() < 0.4)
    tags = {genre} if genre != "pop" else {"pop"}
    if genre in ("techno", "ambient"):
        tags.add("electronic")
    if genre == "techno":
        tags.add("beat")
    tag_of = {"piano": "piano", "strings": "strings", "guitar": "guitar", "dist_guitar": "guitar",
              "drums": "drums", "drums4": "drums", "vocal": "vocal", "synth": "synth", "pad": "synth"}
    for i in inst:
        tags.add(tag_of[i])
    if violin:
        tags.add("violin")
    if "vocal" in inst:
        tags.add("female" if female else "male")
        if genre == "classical":
            tags.add("opera")
    if bpm < 85:
        tags.add("slow")
    elif bpm > 125:
        tags.add("fast")
    if genre == "ambient":
        tags.add("quiet" if rng.random() < 0.3 else "ambient")
    return {"genre": genre, "bpm": bpm, "root": 110.0 * 2 ** (rng.integers(0, 12) / 12.0), "instruments": inst,
            "female": female, "violin": violin, "tags": sorted(tags)}


# ================================================================================ acoustic scenes

# 10 scenes in 5 pairs: each pair shares its background and its event inventory; the second scene of a pair
# hears the same events time-reversed. Stereo image (event panning width, inter-channel delay range and
# background coherence) depends on the pair.
SCENE_PAIRS = (
    ("airport", "shopping_mall"),
    ("bus", "tram"),
    ("metro", "metro_station"),
    ("park", "public_square"),
    ("street_pedestrian", "street_traffic"),
)
_SCENE_FAMILY = {
    # pair index: (background (slope dB/oct, bumps)), [EventClass kwargs of its events], events per second,
    #             stereo (pan width, max inter-channel delay ms, background coherence))
    0: ((-3.0, ((400, 6, 1.2), (2500, 3, 0.8))),
        [dict(family="strike", f=520.0, chord=(1.0, 1.26, 1.5), tau=0.3, dur=(0.5, 1.0)),
         dict(family="crackle", lo=300.0, hi=2500.0, rate=14.0, sustain=0.02, dur=(0.3, 0.7))], 2.2, (0.3, 0.2, 0.7)),
    1: ((-6.0, ((80, 10, 0.5), (160, 6, 0.5))),
        [dict(family="sawsiren", f=260.0, ratio=1.6, period=0.6, rise=0.85, n_harm=6, bright=0.7, dur=(0.8, 1.6)),
         dict(family="steps", f=700.0, steps=(1.0, 1.26, 1.5), dur=(0.3, 0.6))], 1.6, (0.15, 0.1, 0.9)),
    2: ((-4.0, ((60, 8, 0.6), (3500, 5, 0.5))),
        [dict(family="sweep", f=2200.0, ratio=1.5, n_harm=2, bright=0.3, dur=(0.4, 1.0)),
         dict(family="am_noise", lo=100.0, hi=1500.0, rate=5.0, dur=(0.6, 1.2))], 1.8, (0.5, 0.4, 0.5)),
    3: ((-2.0, ((4000, 4, 0.8),)),
        [dict(family="sweep", f=3000.0, ratio=1.8, n_harm=2, bright=0.2, dur=(0.12, 0.3)),
         dict(family="strike", f=1300.0, chord=(1.0, 2.1), n_harm=2, tau=0.2, dur=(0.15, 0.35))], 3.0, (0.9, 0.5, 0.1)),
    4: ((-5.0, ((120, 5, 0.8), (1000, 3, 1.0))),
        [dict(family="sawsiren", f=420.0, ratio=2.0, period=0.9, rise=0.85, n_harm=6, bright=0.7, dur=(0.9, 1.8)),
         dict(family="crackle", lo=150.0, hi=1500.0, rate=5.0, tau=0.05, sustain=0.0, dur=(0.5, 1.0))], 1.5,
        (0.7, 0.6, 0.3)),
}
SCENES = tuple(s for p in SCENE_PAIRS for s in p)


def scene_location(rng: np.random.Generator) -> dict:
    """Traits of one recording location (fixed for all its segments): background colour, levels, balance."""
    return {"tilt": rng.uniform(-1.0, 1.0), "bump_f": 2 ** rng.uniform(-0.3, 0.3), "bg_db": rng.uniform(-3, 3),
            "rate": rng.uniform(0.7, 1.3), "balance_db": rng.uniform(-2, 2)}


def scene_clip(rng: np.random.Generator, sr: int, seconds: float, scene: str, loc: dict) -> np.ndarray:
    """A stereo (2, n) acoustic scene: background texture + a Poisson stream of the scene's events,
    panned and delayed per event, plus distractors."""
    fam = [i for i, p in enumerate(SCENE_PAIRS) if scene in p][0]
    rev = SCENE_PAIRS[fam][1] == scene
    (slope, bumps), evs, rate, (pan_w, delay_ms, coh) = _SCENE_FAMILY[fam]
    n = nsamp(seconds, sr)
    bumps = tuple((c * loc["bump_f"], g, w) for c, g, w in bumps)
    common = colored_noise(rng, n, sr, slope + loc["tilt"], bumps=bumps)
    bg = np.stack([np.sqrt(coh) * common
                   + np.sqrt(1 - coh) * colored_noise(rng, n, sr, slope + loc["tilt"], bumps=bumps) for _ in range(2)])
    classes = [EventClass(reverse=rev, **dict(e, jitter=0.15)) for e in evs]
    ev = np.zeros((2, n))
    count = rng.poisson(2.0 * rate * loc["rate"] * seconds) + 1
    for _ in range(count):
        x = classes[rng.integers(len(classes))].draw(rng, sr) * db(rng.uniform(-8, 0))
        pan = np.clip(rng.normal(0, pan_w), -1, 1)
        gl, gr = np.cos((pan + 1) * np.pi / 4), np.sin((pan + 1) * np.pi / 4)
        d = int(round(pan * delay_ms * 1e-3 * sr))
        lo = -(len(x) // 3)
        start = int(rng.integers(lo, max(n - 2 * len(x) // 3, lo + 1)))
        add_at(ev[0], x * gl * np.sqrt(2), start + max(d, 0))
        add_at(ev[1], x * gr * np.sqrt(2), start + max(-d, 0))
    for _ in range(rng.poisson(0.5 * seconds / 3)):
        x = distractor(rng, sr) * db(rng.uniform(-10, -2))
        add_at(ev, np.stack([x, x * db(rng.uniform(-6, 6))]), int(rng.integers(0, max(1, n - len(x)))))
    snr = rng.uniform(6, 15)
    bg *= rms(ev) / rms(bg) * db(-snr + loc["bg_db"])
    out = ev + bg
    out[1] *= db(loc["balance_db"])
    out *= db(rng.uniform(-18, -6)) / max(np.max(np.abs(out)), 1e-9)
    return out


# ================================================================================ DCASE 2017 / 2018 Task 4 classes

def dcase2017_classes() -> dict[str, EventClass]:
    """Six of the 17 smart-cars classes, as three forward/reversed pairs (long events, as sirens and horns are)."""
    horn = pair("strike", dur=(1.2, 3.0), f=180.0, chord=(1.0, 1.26, 1.5, 2.0), n_harm=6, bright=0.75, tau=0.45)
    siren = pair("sawsiren", dur=(1.5, 3.5), f=650.0, ratio=1.8, period=0.5, rise=0.82)
    beeps = pair("steps", dur=(1.0, 3.0), f=1100.0, steps=(1.0, 1.335, 1.782), duty=0.7)
    return {"Train horn": horn[0], "Air horn, truck horn": horn[1],
            "Car alarm": beeps[0], "Reversing beeps": beeps[1],
            "Ambulance (siren)": siren[0], "Fire engine, fire truck (siren)": siren[1]}


def dcase2018_classes() -> dict[str, EventClass]:
    """The 10 DCASE 2018 Task 4 domestic classes (the original code's order)."""
    dogcat = pair("sweep", dur=(0.3, 0.9), f=450.0, ratio=1.9, n_harm=6, bright=0.7, noise=0.3)
    fry_water = pair("crackle", dur=(1.5, 4.0), lo=1500.0, hi=9000.0, rate=25.0, tau=0.015, sustain=0.1)
    vac_blend = pair("am_noise", dur=(1.5, 4.0), lo=200.0, hi=6000.0, rate=4.0, depth=0.8, tau=0.3, whine=0.6,
                     whine_f=420.0)
    return {"Alarm_bell_ringing": EventClass("steps", dur=(0.8, 2.5), f=1800.0, steps=(1.0, 1.5), duty=0.5),
            "Speech": EventClass("speech", dur=(0.5, 1.8)),
            "Dog": dogcat[0], "Cat": dogcat[1],
            "Vacuum_cleaner": vac_blend[0], "Blender": vac_blend[1],
            "Dishes": EventClass("strike", dur=(0.3, 0.8), f=2400.0, chord=(1.0, 2.76), n_harm=2, bright=0.3,
                                 tau=0.1, stretch=0.003),
            "Frying": fry_water[0], "Running_water": fry_water[1],
            "Electric_shaver_toothbrush": EventClass("buzz", dur=(1.0, 3.0), f=120.0, am_rate=35.0)}


def _speech_family(rng, sr, dur):
    """Speech events: a few random words of a random speaker, fitted into dur seconds."""
    spk = speaker(rng)
    words = list(WORDS.values()) + list(EXTRA_WORDS.values())
    n = nsamp(dur, sr)
    out = np.zeros(n)
    t = 0
    while t < n - nsamp(0.2, sr):
        w = say(rng, sr, words[rng.integers(len(words))], spk)
        w = w[: n - t]
        add_at(out, w * fades(len(w), sr, 0.005, 0.01), t)
        t += len(w) + nsamp(rng.uniform(0.03, 0.15), sr)
    return out * fades(n, sr, 0.005, 0.01)


FAMILIES["speech"] = _speech_family


# ================================================================================ ACIVW (audio-visual)

ACIVW_CLASSES = ("train", "boat", "drone", "fountain", "drill", "razor", "hair dryer", "hoover", "shopping cart",
                 "traffic")
_ACIVW_AUDIO = {
    # class -> list of (EventClass, share of time it is active: 1 = continuous)
    0: [(EventClass("rumble", f=55.0, dur=(2, 2)), 1.0),
        (EventClass("crackle", lo=400.0, hi=3000.0, rate=4.0, tau=0.03, sustain=0.0, dur=(1, 1)), 1.0)],
    1: [(EventClass("am_noise", lo=40.0, hi=800.0, rate=1.2, depth=0.5, tau=0.4, whine=1.0, whine_f=70.0,
                    dur=(2, 2)), 1.0)],
    2: [(EventClass("sawsiren", f=180.0, ratio=1.15, period=0.25, rise=0.85, n_harm=8, bright=0.8, dur=(2, 2)), 1.0)],
    3: [(EventClass("crackle", lo=800.0, hi=6000.0, rate=60.0, tau=0.008, sustain=0.4, dur=(2, 2)), 1.0)],
    4: [(EventClass("sawsiren", f=600.0, ratio=1.5, period=0.9, rise=0.3, n_harm=5, bright=0.7, dur=(2, 2)), 1.0)],
    5: [(EventClass("buzz", f=110.0, am_rate=40.0, dur=(2, 2)), 1.0)],
    6: [(EventClass("am_noise", lo=300.0, hi=6000.0, rate=0.5, depth=0.2, whine=0.5, whine_f=900.0, dur=(2, 2)),
         1.0)],
    7: [(EventClass("am_noise", lo=150.0, hi=5000.0, rate=0.5, depth=0.2, whine=0.8, whine_f=380.0, dur=(2, 2)),
         1.0)],
    8: [(EventClass("crackle", lo=1000.0, hi=5000.0, rate=18.0, tau=0.02, sustain=0.05, dur=(2, 2)), 1.0),
        (EventClass("strike", f=1700.0, chord=(1.0, 2.4), n_harm=2, tau=0.1, dur=(0.2, 0.2)), 0.3)],
    9: [(EventClass("am_noise", lo=40.0, hi=3000.0, rate=0.3, depth=0.7, tau=0.6, dur=(2, 2)), 1.0),
        (EventClass("rumble", f=90.0, dur=(2, 2)), 1.0)],
}
# visual identity: (background RGB, object RGB, object shape 0 disc / 1 box / 2 stripes), source row/col (0..1)
_ACIVW_LOOK = {0: ((90, 90, 100), (200, 40, 30), 1, (0.55, 0.5)), 1: ((40, 90, 160), (230, 230, 230), 1, (0.6, 0.5)),
               2: ((140, 190, 235), (30, 30, 30), 0, (0.25, 0.5)), 3: ((60, 120, 70), (180, 220, 255), 2, (0.5, 0.5)),
               4: ((150, 120, 90), (240, 200, 20), 1, (0.5, 0.45)), 5: ((220, 210, 200), (60, 60, 200), 0, (0.5, 0.5)),
               6: ((200, 180, 200), (240, 80, 150), 0, (0.45, 0.55)),
               7: ((120, 110, 90), (200, 30, 200), 1, (0.7, 0.5)),
               8: ((170, 170, 160), (120, 120, 130), 2, (0.65, 0.5)), 9: ((80, 80, 80), (250, 150, 20), 2, (0.6, 0.5))}


def acivw_audio(rng: np.random.Generator, cls: int, n: int, sr: int) -> np.ndarray:
    """Mono source signal of one ACIVW recording of class cls (continuous texture, n samples)."""
    out = np.zeros(n)
    for ec, share in _ACIVW_AUDIO[cls]:
        piece = nsamp(ec.dur[0], sr)
        layer = np.zeros(n)
        t = 0
        while t < n:
            if share >= 1 or rng.random() < share:
                x = ec.draw(rng, sr) * db(rng.uniform(-3, 0))
                add_at(layer, x * fades(len(x), sr, 0.05, 0.05) if share >= 1 else x, t)
            t += piece - (nsamp(0.05, sr) if share >= 1 else 0)
        out += layer / rms(layer)
    out += 0.15 * colored_noise(rng, n, sr, -3)
    return out / rms(out)


ACIVW_BAND_EDGES = np.geomspace(100, 6144, 13)  # the 12 "multispectral" channels of the demo acoustic image


def acivw_path(rng: np.random.Generator, start, frames: int, travel: float = 0.45, lo: float = 0.12,
               hi: float = 0.88) -> np.ndarray:
    """(frames, 2) row/col positions (0..1) of a source moving in a straight line `travel` frame widths over the
    video in a random direction, reflected at the borders lo/hi."""
    angle = rng.uniform(0, 2 * np.pi)
    t = np.linspace(0, 1, frames)[:, None]
    pos = np.asarray(start, float)[None] + travel * t * np.array([np.sin(angle), np.cos(angle)])[None]
    span = hi - lo
    pos = np.abs((pos - lo) % (2 * span))  # reflect: a triangle wave between lo and hi
    return lo + np.where(pos > span, 2 * span - pos, pos)


def acivw_recording(rng: np.random.Generator, cls: int, frames: int, mics: int = 4, sr: int = 12288,
                    hop: int = 1024, img_hw=(36, 48), video_hw=(48, 64), snr_db=(0.0, 12.0), n_classes: int = 10):
    """One ACIVW recording of `frames` video frames: audio (mics, frames*hop) float, acoustic images
    (frames, 36, 48, 12) float32 and video frames (frames, H, W, 3) uint8, all following one moving source.

    The scene: the class's source moves across the field of view (acivw_path) and a distractor, the sound of
    another class, plays from no particular direction (diffuse) at a signal-to-distractor ratio drawn from
    `snr_db` per recording: a single microphone hears the mixture, so audio alone confuses classes when the
    distractor is loud.
    - Microphones: mic 0 is the reference; the others hear the source delayed by its column and attenuated, plus
      the distractor and their own noise.
    - Acoustic image (the array's beamformed map, simulated): in each of the 12 log-spaced bands the source's
      band amplitude spread by the array's point-spread function at the source position (a Gaussian whose
      width falls with frequency: wide at low bands, as a planar array resolves low frequencies worse), plus the
      distractor's band amplitude spread evenly over the map and sensor noise. The image therefore tells where
      the source is and what it sounds like apart from the distractor.
    - Video: the class's object (colour, shape) at the source position over the class's background (colours
      jittered per recording), with a per-recording contrast (dim scenes hide the object) and sensor noise.
    """
    n = frames * hop
    src = acivw_audio(rng, cls, n, sr)
    other = (cls + int(rng.integers(1, max(n_classes, 2)))) % max(n_classes, 2)
    dist = acivw_audio(rng, other, n, sr)
    gain = db(-rng.uniform(*snr_db))  # distractor level relative to the source (both unit rms)
    bg_col, obj_col, shape, (r0, c0) = _ACIVW_LOOK[cls]
    path = acivw_path(rng, (r0 + rng.uniform(-0.15, 0.15), c0 + rng.uniform(-0.25, 0.25)), frames)
    rows, cols = path[:, 0], path[:, 1]
    audio = np.empty((mics, n))
    col_per_sample = np.repeat(cols, hop)
    for m in range(mics):
        d = np.round(3 * (col_per_sample - 0.5) * m).astype(int) if m else 0
        s_m = src[np.clip(np.arange(n) - d, 0, n - 1)] * (db(rng.uniform(-1, 1)) if m else 1.0)
        audio[m] = s_m + gain * dist + 0.05 * rng.standard_normal(n)
    # acoustic images: band amplitudes of the source and of the distractor, per frame
    def band_amp(x):
        spec = np.abs(np.fft.rfft(x.reshape(frames, hop) * np.hanning(hop), axis=1)) ** 2
        f = np.fft.rfftfreq(hop, 1.0 / sr)
        e = np.stack([spec[:, (f >= a) & (f < b)].mean(1) for a, b in zip(ACIVW_BAND_EDGES[:-1],
                                                                          ACIVW_BAND_EDGES[1:])], axis=1)
        return np.sqrt(e)

    a_src, a_dist = band_amp(src), gain * band_amp(dist)
    scale = np.mean(a_src + a_dist) + 1e-12
    a_src, a_dist = a_src / scale, a_dist / scale
    h, w = img_hw
    yy, xx = np.mgrid[0:h, 0:w]
    centres = np.sqrt(ACIVW_BAND_EDGES[:-1] * ACIVW_BAND_EDGES[1:])
    width = 0.06 * np.sqrt(centres[-1] / centres)  # 0.06 (top band) .. ~0.45 (bottom band) of the map
    d2 = (yy[None] / h - rows[:, None, None]) ** 2 + (xx[None] / w - cols[:, None, None]) ** 2  # (F, h, w)
    psf = np.exp(-d2[..., None] / (2 * width[None, None, None] ** 2))  # (F, h, w, 12)
    img = psf * a_src[:, None, None, :] + 0.3 * a_dist[:, None, None, :]
    img = img + 0.02 * rng.standard_normal(img.shape)
    img = np.round(img * 16) / 16  # 4 fractional bits: quantised, so the .mat files compress well
    # video frames
    H, W = video_hw
    vy, vx = np.mgrid[0:H, 0:W]
    bg = np.clip(np.array(bg_col, float) + rng.normal(0, 20, 3), 0, 255)
    contrast = rng.uniform(0.3, 1.0)
    obj = bg + contrast * (np.array(obj_col, float) + rng.normal(0, 15, 3) - bg)
    vid = np.empty((frames, H, W, 3), np.float64)
    grad = (vy / H)[..., None] * 30.0  # a little vertical shading
    for i in range(frames):
        dy, dx = vy / H - rows[i], vx / W - cols[i]
        if shape == 0:
            mask = (dy / 0.22) ** 2 + (dx / 0.16) ** 2 < 1
        elif shape == 1:
            mask = (np.abs(dy) < 0.18) & (np.abs(dx) < 0.25)
        else:
            mask = (np.abs(dy) < 0.3) & (np.abs(dx) < 0.3) & ((vx // 4) % 2 == 0)
        vid[i] = np.where(mask[..., None], obj, bg + grad)
    vid += rng.normal(0, 6.0, vid.shape)
    return audio, img.astype(np.float32), np.clip(np.round(vid), 0, 255).astype(np.uint8)


# ================================================================================ release writing helpers
# Byte-for-byte reproducible archives: fixed timestamps, owners and modes, members in the order given.

ZIP_DATE = (2020, 1, 1, 0, 0, 0)
TAR_MTIME = 1577836800  # 2020-01-01T00:00:00Z


def wav_bytes(x: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    """A RIFF/WAVE file (soundfile/libsndfile) of a float signal (samples,) or (channels, samples)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    data = np.asarray(x, np.float64)
    data = data.T if data.ndim == 2 else data
    sf.write(buf, np.clip(data, -1.0, 1.0 - 2.0 ** -23), sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def mp3_bytes(x: np.ndarray, sr: int, kbps: int = 32) -> bytes:
    """A constant-bitrate MPEG Layer III file (libsndfile's LAME). Same input -> same bytes."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    # libsndfile maps compression_level 0..1 linearly onto the bitrate range (MPEG-2 at 16 kHz: 160..8 kbit/s)
    level = min(max((160 - kbps) / 152.0, 0.0), 0.99)
    sf.write(buf, np.clip(np.asarray(x, np.float64), -1, 1), sr, format="MP3", subtype="MPEG_LAYER_III",
             compression_level=level, bitrate_mode="CONSTANT")
    return buf.getvalue()


class ZipWriter:
    """zipfile with fixed timestamps/attributes; adds parent directory entries (as real zips have) once."""

    def __init__(self, path, compresslevel: int = 6, dir_entries: bool = True):
        import zipfile

        self._zipfile = zipfile
        self.zf = zipfile.ZipFile(path, "w", allowZip64=True)
        self.level = compresslevel
        self.dir_entries = dir_entries
        self.dirs: set[str] = set()

    def _dir(self, name: str) -> None:
        if not self.dir_entries or name in self.dirs:
            return
        parent = name.rstrip("/").rpartition("/")[0]
        if parent:
            self._dir(parent + "/")
        self.dirs.add(name)
        info = self._zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.create_system = 3
        info.external_attr = (0o40755 << 16) | 0x10
        self.zf.writestr(info, b"")

    def add(self, name: str, data: bytes, compress: bool = True) -> None:
        parent = name.rpartition("/")[0]
        if parent:
            self._dir(parent + "/")
        info = self._zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.create_system = 3
        info.external_attr = 0o100644 << 16
        info.compress_type = self._zipfile.ZIP_DEFLATED if compress else self._zipfile.ZIP_STORED
        self.zf.writestr(info, data, compresslevel=self.level if compress else None)

    def close(self) -> None:
        self.zf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_tar_gz(path, members) -> None:
    """A gzip-compressed tar with fixed mtimes/owners and no gzip timestamp. members: (name, bytes | None)
    in order; None makes a directory entry."""
    import gzip
    import io
    import tarfile

    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tf:
            for name, data in members:
                ti = tarfile.TarInfo(name)
                ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = TAR_MTIME, 0, 0, "", ""
                if data is None:
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    tf.addfile(ti)
                else:
                    ti.mode, ti.size = 0o644, len(data)
                    tf.addfile(ti, io.BytesIO(data))


def remote_file(out_dir, name: str):
    """The RemoteFile of a release file written under out_dir (file:// URL, sha256, size)."""
    import hashlib
    from pathlib import Path

    from soundbench.datasets.base import RemoteFile

    path = Path(out_dir) / name
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return RemoteFile(name=name, url=Path(out_dir).resolve().as_uri() + "/" + name, sha256=h.hexdigest(),
                      size=path.stat().st_size)


def fake_ytid(rng: np.random.Generator) -> str:
    """An 11-character YouTube-like id."""
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
    return "".join(alphabet[rng.integers(0, 64, 11)])
