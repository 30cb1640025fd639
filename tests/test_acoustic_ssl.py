"""The acoustic-images SSL networks, matching distance, triplet losses and embedding metrics (issue 14)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from soundbench import systems, tasks
from soundbench.evaluation.embedding import retrieval_metrics
from soundbench.models import acoustic_ssl as a


def test_paper_shapes():
    # HearNet: 200 frames -> 40 -> 8 -> 1; DualCamNet and the video trunk: 12 x 16 x 128 maps
    h = a.HearNet(257)
    assert h(audio=torch.randn(2, 1, 257, 200))["embedding"].shape == (2, 128)
    d = a.DualCamNet(12)
    out = d(aimage=torch.randn(2, 24, 36, 48, 12))
    assert out["map"].shape == (2, 128, 12, 16) and out["embedding"].shape == (2, 128)
    v = a.ResNet18Video()
    assert v.maps(torch.zeros(1, 2, 224, 298, 3, dtype=torch.uint8)).shape == (1, 2, 128, 12, 16)
    assert a.HearNet(257, 10)(x=torch.randn(2, 1, 257, 200)).shape == (2, 10)
    assert a.DualCamNet(12, 10)(x=torch.randn(2, 24, 36, 48, 12)).shape == (2, 10)
    # the temporal conv stays within groups of 12 frames: frame 12 does not see frames 0-11
    x = torch.zeros(1, 24, 36, 48, 12)
    base = d.maps(x)
    x[0, 11] = 5.0
    changed = (d.maps(x) - base).abs().flatten(2).amax(-1)[0] > 0
    assert changed[:12].any() and not changed[12:].any()


def test_matching_distance_as_the_original():
    torch.manual_seed(0)
    A, V = torch.rand(3, 4, 2, 5), torch.rand(2, 4, 2, 5)
    d = a.matching_distances(A, V)
    for i, j in itertools.product(range(3), range(2)):
        v = (A[i] * V[j] * V[j]).sum((-1, -2))
        ai = A[i].sum((-1, -2))
        want = ((v / v.norm() - ai / ai.norm()) ** 2).sum()
        assert torch.isclose(d[i, j], want, atol=1e-6)
    # the retrieval distance of HearNet outputs equals the matching with the tiled, ReLU'd audio map
    emb, vmap = torch.randn(3, 128), torch.rand(2, 128, 3, 4)
    want = a.matching_distances(a.audio_map(emb, vmap), vmap)
    got = a.retrieval_distance("audio", emb, "video", vmap.flatten(1), {})
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(a.retrieval_distance("video", vmap.flatten(1), "audio", emb, {}), want.T, atol=1e-5)


def test_triplet_losses_brute_force():
    torch.manual_seed(1)
    d = torch.rand(6, 6)
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    video = torch.tensor([0, 0, 1, 2, 2, 3])
    pos = lambda i, j: y[i] == y[j] and video[i] == video[j]  # noqa: E731
    losses = [max(float(d[i, p] - d[i, n]) + 0.2, 0.0) for i, p, n in itertools.product(range(6), repeat=3)
              if pos(i, p) and not pos(i, n)]
    positive = [v for v in losses if v > 1e-16]
    assert float(a.triplet_loss(d, y, video, epoch=3)) == pytest.approx(sum(positive) / len(positive), rel=1e-5)
    hard = []
    for i in range(6):
        hp = max(float(d[i, j]) for j in range(6) if pos(i, j))
        hn = min(float(d[i, j]) for j in range(6) if not pos(i, j))
        hard.append(max(hp - hn + 0.2, 0.0))
    assert float(a.triplet_loss(d, y, video, epoch=4)) == pytest.approx(np.mean(hard), rel=1e-5)


def test_distillation_uses_the_frozen_teacher():
    shapes = {"audio": (1, 257, 50), "video": (2, 48, 64, 3), "aimage": (12, 36, 48, 12)}
    student = systems.get("distill_audio").build(3, None, shapes, video_map_size=[12, 16])
    teacher = systems.get("ssl_aimage_video").build(3, None, {"aimage": shapes["aimage"], "video": shapes["video"]},
                                                    video_map_size=[12, 16]).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    batch = {"inputs": {"audio": torch.randn(4, 1, 257, 50), "aimage": torch.rand(4, 12, 36, 48, 12),
                        "video": torch.randint(0, 255, (4, 2, 48, 64, 3), dtype=torch.uint8)},
             "y": torch.tensor([0, 0, 1, 2]), "group": torch.tensor([0, 0, 1, 2])}
    out = student(**{k: v for k, v in batch["inputs"].items() if k != "aimage"})
    params = {**systems.get("distill_audio").params, "alpha": 1.0, "l2": 0.0}
    ctx = type("Ctx", (), {"params": params, "epoch": 0, "teacher": teacher, "model": student})()
    loss = a.distill_loss(out, batch, ctx)
    loss.backward()
    assert student.net.fc2.weight.grad.abs().sum() > 0
    grad = student.video.conv_map[0].weight.grad  # alpha 1: the video side gets no gradient
    assert grad is None or not grad.any()
    ctx.teacher = None
    with pytest.raises(ValueError, match="teacher"):
        a.distill_loss(out, batch, ctx)


def test_retrieval_metrics_by_hand():
    q = np.array([[1.0, 0], [0, 1], [1, 1]])
    g = np.array([[1.0, 0.1], [0.1, 1], [-1, 0]])
    y = np.array([0, 1, 0])
    m = retrieval_metrics("a", q, "v", g, y)
    # query 0 ranks g0 (class 0), g1, g2 (class 0): AP = (1/1 + 2/3) / 2; query 1: g1 first, AP 1;
    # query 2: g0 and g1 tie near, g0 first (class 0), then g1, g2: AP = (1 + 2/3) / 2
    assert m["recall@1/a->v"] == 1.0
    assert m["map/a->v"] == pytest.approx(((1 + 2 / 3) / 2 + 1 + (1 + 2 / 3) / 2) / 3)


def test_embedding_task_names_every_embedding():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    emb = lambda: 0.3 * rng.normal(size=(30, 4)) + 3.0 * np.eye(4)[y]  # noqa: E731
    preds = {s: tasks.Predictions(s, [str(i) for i in range(30)], {"y": y}, emb(), extra={"video": emb()})
             for s in ("train", "validation", "test")}
    ctx = tasks.EvalContext(["a", "b", "c"], np.full(3, np.nan), other=preds, embedding_name="audio",
                            retrieval=(("audio", "video"),))
    out, per_class = tasks.get("embedding").metrics(preds["test"], ctx)
    assert out["knn_accuracy"] == 1.0 and out["knn_accuracy/video"] == 1.0
    assert out["recall@1/audio->video"] == 1.0 and "map/audio->video" in out
    assert "accuracy/video" in per_class


def test_paper_yaml_plans_every_stage_with_the_teacher_edge(tmp_path):
    import yaml
    from workflow_runs import ROOT, planned

    from soundbench.features.paper_specs import PAPER_SPECS

    paper = yaml.safe_load((ROOT / "workflow/experiments/paper.yaml").read_text())
    exps = {k: v for k, v in paper["experiments"].items() if v["dataset"] == "acivw"}
    assert paper["datasets"]["acivw"]["source"] == "local"
    assert paper["features"]["acivw_stft"] == PAPER_SPECS["acivw"][1]
    (tmp_path / "ACIVW").mkdir()
    cfg = {**paper, "experiments": exps,
           "datasets": {"acivw": {**paper["datasets"]["acivw"], "root": str(tmp_path / "ACIVW"), "shards": 2}}}
    (tmp_path / "work").mkdir()
    jobs = planned(tmp_path / "work", cfg)
    trained = {(j["wildcards"]["variant"], j["wildcards"]["seed"]): j for j in jobs if j["rule"] == "train"}
    stages = {"acivw_hearnet", "acivw_dualcamnet", "acivw_resnet18_video", "acivw_ssl_audio", "acivw_ssl_aimage"}
    alphas = {f"acivw_distill_a{a}" for a in ("0.1", "0.3", "0.5", "0.7", "0.9")}
    assert {v for v, _ in trained} == stages | alphas
    teacher = "results/acivw/ssl_aimage_video/acivw_ssl_aimage/seed-4/model.pt"
    for name in alphas:
        assert exps[name]["params"]["alpha"] == float(name.rsplit("a", 1)[1]) and not exps[name].get("paper")
        for seed in range(5):
            assert teacher in trained[(name, str(seed))]["input"]
    features = {j["wildcards"]["feature"] for j in jobs if j["rule"] == "features"}
    assert features == {"acivw_stft", "acivw_aimage", "acivw_video"}


def test_bench_train_steps_a_multimodal_case_with_its_teacher():
    from soundbench.bench import train

    small = {"widths": [4, 8, 16], "video_map_size": [12, 16], "dualcam_width": 4,
             "hearnet_widths": [8, 8, 8, 16, 16, 16]}
    case = train.Case("distill_audio", "test", small, (), "embedding", 3, compile=False,
                      inputs=(("audio", (1, 33, 20), "float32"), ("video", (2, 48, 64, 3), "uint8"),
                              ("aimage", (12, 36, 48, 12), "float32")), teacher="ssl_aimage_video", batch=4)
    assert train.step_flops(case, 4) > 0
    rows = train.case_rows(case, torch.device("cpu"), quick=True)
    assert [r["mode"] for r in rows] == ["plain eager", "compile: false"]
    # the same first step in both modes (channels-last only changes the rounding)
    assert rows[0]["input"] == "1x33x20 + 2x48x64x3 + 12x36x48x12" and rows[1]["loss_diff"] < 1e-2
    assert {c.system for c in train.FULL} >= {"hearnet", "dualcamnet", "resnet18_video", "ssl_audio_video",
                                              "ssl_aimage_video", "distill_audio"}
