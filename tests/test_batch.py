"""xattr.batch: dataset-scale attribution on Dask into a Zarr store.

Oracle: the serial loop over aligned micro-batches (``method(model, x[s:s+b], t[s:s+b])``, and
``method(model, x[i:i+1], t[i:i+1], rng=default_rng(SeedSequence(seed, spawn_key=(i,))))`` for
stochastic methods), written here independently of the module; results must equal it bit for bit.
"""
import json
import os
import signal
import sys
import threading

import numpy as np
import pytest

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

need("dask", "xattr.batch (extra 'batch')")
need("zarr", "xattr.batch's store (extra 'batch')")
distributed = need("distributed", "xattr.batch on a local cluster (extra 'batch')")

import cloudpickle  # noqa: E402  (a dask dependency)
from PIL import Image  # noqa: E402

import xattr  # noqa: E402
from xattr import batch  # noqa: E402
from xattr._conventions import as_rng  # noqa: E402
from xattr.methods import registry  # noqa: E402
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential  # noqa: E402

# the test methods below travel to process workers by value (those processes cannot import this file)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

N, SEED, BS = 24, 7, 2


def tiny_model(rng=0):
    g = np.random.default_rng(rng)
    return Sequential(Conv2D(3, 4, 3, padding=1, rng=g), ReLU(), MaxPool2D(2),
                      Conv2D(4, 4, 3, padding=1, rng=g), ReLU(), GlobalAvgPool2D(), Dense(4, 3, rng=g))


def noisy_gradient(model, x, target, sigma=0.1, samples=3, rng=None):
    """A small SmoothGrad-like stochastic method (mean gradient over noisy copies), for the tests."""
    gen = as_rng(rng)
    return np.mean([xattr.gradient(model, x + sigma * gen.standard_normal(x.shape), target)
                    for _ in range(samples)], axis=0)


def gxi_with_gap(model, x, target, return_delta=False):
    """Gradient × input with its completeness gap sum(a) - (S(x) - S(0)), for the summaries."""
    a = xattr.gradient_x_input(model, x, target)
    if not return_delta:
        return a
    t = np.broadcast_to(np.asarray(target), (x.shape[0],)) if not callable(target) else target
    sel = lambda z: model.forward(z)[np.arange(x.shape[0]), t]  # noqa: E731
    return a, a.reshape(x.shape[0], -1).sum(1) - (sel(x) - sel(np.zeros_like(x)))


class Counter:
    """Counts images seen by ``counting_gradient``; raises once ``fail_after`` images were seen."""

    lock = threading.Lock()
    seen = 0
    fail_after = None


class Interrupted(Exception):
    pass


def counting_gradient(model, x, target):
    with Counter.lock:
        if Counter.fail_after is not None and Counter.seen >= Counter.fail_after:
            raise Interrupted("simulated interruption")
        Counter.seen += x.shape[0]
    return xattr.gradient(model, x, target)


def slow_gradient(model, x, target):
    import time

    time.sleep(0.15)  # slow enough that a worker can be killed while chunks remain
    return xattr.gradient(model, x, target)


def int_map(model, x, target):
    return np.zeros(x.shape, dtype=np.int64)


TEST_METHODS = {"test_noisy_gradient": noisy_gradient, "test_gxi_gap": gxi_with_gap, "test_int_map": int_map,
                "test_counting_gradient": counting_gradient, "test_slow_gradient": slow_gradient}
METHODS = ["gradient", "grad_cam", "test_noisy_gradient", "test_gxi_gap"]


@pytest.fixture(scope="module", autouse=True)
def test_methods():
    """Register the test methods for this module only (other tests list the registry)."""
    for name, fn in TEST_METHODS.items():
        registry.register_method(name, fn, "test")
    yield
    for name in TEST_METHODS:
        registry._METHODS.pop(name, None)


@pytest.fixture(scope="module")
def data():
    x = np.random.default_rng(1).random((N, 3, 8, 8))
    return tiny_model(), x


def serial(model, x, method, seed=SEED, bs=BS, target=None):
    """The oracle: a plain loop over aligned micro-batches (per image for stochastic methods)."""
    fn = registry.get_method(method)
    out = []
    for s in range(0, x.shape[0], bs):
        xb = x[s:s + bs]
        t = model.forward(xb).argmax(1) if target is None else target
        if method == "test_noisy_gradient":
            out += [
                fn(
                    model,
                    xb[j : j + 1],
                    t[j : j + 1],
                    rng=np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(s + j,))),
                )
                for j in range(xb.shape[0])
            ]
        else:
            out.append(fn(model, xb, t))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def expected(data):
    model, x = data
    return {m: serial(model, x, m) for m in METHODS}


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster (2 worker processes, loopback only) shared by the module: startup is slow."""
    import dask

    # as docs/batch.md advises: without it glibc unmaps every large temporary in the workers (slower)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None, silence_logs=40) as c:
        with distributed.Client(c, set_as_default=False) as client:  # the job must not rely on a default client
            yield c, client


def run(data, tmp_path, name="s.zarr", **kw):
    model, x = data
    kw.setdefault("methods", METHODS)
    kw.setdefault("seed", SEED)
    kw.setdefault("batch_size", BS)
    return batch.attribute_dataset(model, kw.pop("images", x), kw.pop("targets", None), out=str(tmp_path / name), **kw)


def check_equal(result, expected):
    for m, ref in expected.items():
        got = batch.read_maps(result.store, m)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        assert np.array_equal(got, ref), f"{m}: max |diff| {np.abs(got - ref).max()}"


# -- bit-for-bit equality with the serial loop -------------------------------------------------
@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
@pytest.mark.parametrize("chunks_per_worker", [1, 2])
def test_local_schedulers_equal_serial(data, expected, tmp_path, scheduler, chunks_per_worker):
    chunk = N // (2 * chunks_per_worker)  # 2 workers
    r = run(data, tmp_path, chunk=chunk, scheduler=scheduler, workers=2)
    assert r.chunks_total == 2 * chunks_per_worker and r.chunks_run == r.chunks_total and r.chunks_skipped == 0
    check_equal(r, expected)


@pytest.mark.parametrize("chunks_per_worker", [1, 2])
def test_local_cluster_equals_serial(data, expected, tmp_path, cluster, chunks_per_worker):
    c, client = cluster
    client.wait_for_workers(2, timeout=60)
    # by address for one case (the CLI's --scheduler tcp://...), by Client for the other
    sched = c.scheduler_address if chunks_per_worker == 1 else client
    assert chunks_per_worker != 1 or sched.startswith("tcp://127.0.0.1:")
    r = run(data, tmp_path, chunk=N // (2 * chunks_per_worker), scheduler=sched)
    check_equal(r, expected)


#: cheaper settings for the tiny images of these tests (every other method runs with the first conformance case its
#: spec declares, without its seed, or its defaults)
CHEAP = {"occlusion": {"window": 4, "stride": 2}, "lime": {"n_samples": 20}, "kernel_shap": {"n_samples": 20},
         "expected_gradients": {"references": np.zeros((2, 3, 8, 8)), "n_samples": 4}}


def _declared_case(name):
    cases = registry.get_spec(name).cases
    opts = dict(cases[0]) if isinstance(cases, (list, tuple)) and cases else {}
    opts.pop("rng", None)  # the batch run gives each image its own generator
    return opts


@pytest.mark.parametrize("name", [m for m in registry.available_methods() if not m.startswith("test_")])
def test_every_registered_method_equals_serial(data, tmp_path, name):
    """Any method of the registry runs by name; stochastic ones (``rng``) get per-image generators."""
    import inspect

    model, x = data
    x, fn, opts = x[:6], registry.get_method(name), CHEAP.get(name, _declared_case(name))
    params = list(inspect.signature(fn).parameters.values())[3:]
    required = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    assert not set(required) - set(opts), f"{name} needs the option(s) {required}: add them to CHEAP in this file"
    r = run(data, tmp_path, images=x, methods=[(name, opts)], chunk=4, scheduler="sync")
    ref = []
    for s in range(0, 6, BS):
        xb = x[s:s + BS]
        t = model.forward(xb).argmax(1)
        if "rng" in inspect.signature(fn).parameters:
            ref += [
                fn(
                    model,
                    xb[j : j + 1],
                    t[j : j + 1],
                    **opts,
                    rng=np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(s + j,))),
                )
                for j in range(len(xb))
            ]
        else:
            ref.append(fn(model, xb, t, **opts))
    assert np.array_equal(batch.read_maps(r.store, name), np.concatenate(ref))
    if "return_delta" in inspect.signature(fn).parameters:  # its completeness gap is summarised
        assert r.summary["methods"][name]["completeness_gap"]["count"] == 6


def test_dask_array_and_float32_inputs(data, tmp_path):
    import dask.array as da

    model, x = data
    xd = da.from_array(x, chunks=(5, 3, 8, 8))  # chunks unrelated to the job's
    r = run(data, tmp_path, images=xd, methods=["gradient"], chunk=6, scheduler="threads")
    assert np.array_equal(batch.read_maps(r.store, "gradient"), serial(model, x, "gradient"))
    x32 = x.astype(np.float32)
    r = run(data, tmp_path, name="f32.zarr", images=x32, methods=["gradient"], chunk=6, scheduler="sync")
    got = batch.read_maps(r.store, "gradient")
    assert got.dtype == np.float32 and np.array_equal(got, serial(model, x32, "gradient"))


def test_stochastic_results_do_not_depend_on_chunking_and_follow_the_seed(data, tmp_path):
    a = run(data, tmp_path, name="a.zarr", methods=["test_noisy_gradient"], chunk=4, scheduler="sync")
    b = run(data, tmp_path, name="b.zarr", methods=["test_noisy_gradient"], chunk=12, scheduler="threads")
    c = run(data, tmp_path, name="c.zarr", methods=["test_noisy_gradient"], chunk=4, scheduler="sync", seed=SEED + 1)
    ma, mb, mc = (batch.read_maps(r.store, "test_noisy_gradient") for r in (a, b, c))
    assert np.array_equal(ma, mb)
    assert not np.any(np.all(ma == mc, axis=(1, 2, 3)))  # another seed: every image's noise differs


def test_explicit_targets_and_labels(data, tmp_path):
    model, x = data
    t = np.arange(N) % 3
    r = run(data, tmp_path, targets=t, methods=[("gc_norelu", "grad_cam", {"relu": False}), "gradient"],
            chunk=8, scheduler="sync")
    ref = np.concatenate([xattr.gradient(model, x[s:s + BS], t[s:s + BS]) for s in range(0, N, BS)])
    assert np.array_equal(batch.read_maps(r.store, "gradient"), ref)
    ref = np.concatenate([xattr.grad_cam(model, x[s:s + BS], t[s:s + BS], relu=False) for s in range(0, N, BS)])
    assert np.array_equal(batch.read_maps(r.store, "gc_norelu"), ref)
    import zarr

    root = zarr.open_group(r.store, mode="r")
    assert np.array_equal(root["target"][:], t)
    # the oracle is the job's own unit of computation, the aligned micro-batch: a BLAS GEMM may sum in
    # another order for another number of rows, so scores of the whole batch at once can differ from the
    # job's in the last bit (they do on this machine's OpenBLAS); per micro-batch they are the same bits
    scores = np.concatenate([model.forward(x[s:s + BS]) for s in range(0, N, BS)])
    assert np.array_equal(root["score"][:], scores[np.arange(N), t])


def test_callable_target(data, tmp_path):
    model, x = data
    margin = lambda s: s[:, 1] - s[:, 0]  # noqa: E731  (a function of the scores, explained per image)
    r = run(data, tmp_path, targets=margin, methods=["gradient"], chunk=8, scheduler="processes", workers=2)
    ref = np.concatenate([xattr.gradient(model, x[s:s + BS], margin) for s in range(0, N, BS)])
    assert np.array_equal(batch.read_maps(r.store, "gradient"), ref)
    import zarr

    root = zarr.open_group(r.store, mode="r")
    sc = model.forward(x)
    assert np.allclose(root["score"][:], sc[:, 1] - sc[:, 0], rtol=0, atol=1e-15) and (root["target"][:] == -1).all()


def test_transform_is_applied_before_the_model_and_part_of_the_job(data, tmp_path):
    import functools

    model, x = data
    scale = functools.partial(np.multiply, 2.0)  # a picklable preprocessing step
    r = run(data, tmp_path, methods=["gradient"], chunk=8, scheduler="processes", workers=2, transform=scale)
    assert np.array_equal(batch.read_maps(r.store, "gradient"), serial(model, 2.0 * x, "gradient"))
    assert r.summary["job"]["transform"]["partial"]["callable"] == "numpy.multiply"
    with pytest.raises(batch.JobMismatchError, match="differs in transform"):
        run(data, tmp_path, methods=["gradient"], chunk=8, scheduler="sync", resume=True)


def test_the_command_lines_transform_keeps_the_name_stores_record_and_pickles():
    """``xattr batch`` records ``partial(model_input, spec=...)`` by its qualified name: the name stores written so
    far hold (``xattr.batch.model_input``), so they still resume; pickle and cloudpickle find it by that name."""
    import functools
    import pickle

    import cloudpickle

    from xattr.batch.job import _jsonable

    spec = {"channels": 1, "range": [0.0, 1.0]}
    t = functools.partial(batch.model_input, spec=spec)
    assert _jsonable(t)["partial"] == {"callable": "xattr.batch.model_input"}
    for dumps in (pickle.dumps, cloudpickle.dumps):
        assert pickle.loads(dumps(t)).func is batch.model_input


# -- summaries ---------------------------------------------------------------------------------
def test_summary_json_beside_store(data, tmp_path):
    model, x = data
    r = run(data, tmp_path, name="sum.zarr", chunk=8, scheduler="threads")
    assert r.summary_path == str(tmp_path / "sum.summary.json")
    with open(r.summary_path) as f:
        s = json.load(f)
    assert s["n_images"] == N and s["n_valid"] == N and s["bad_images"] == []
    # completeness gaps, recomputed here from the serial loop
    gaps = np.concatenate([gxi_with_gap(model, x[i:i + BS], model.forward(x[i:i + BS]).argmax(1), True)[1]
                           for i in range(0, N, BS)])
    g = s["methods"]["test_gxi_gap"]["completeness_gap"]
    assert g["count"] == N and g["mean"] == pytest.approx(gaps.mean(), rel=1e-12, abs=1e-15)
    assert g["quantiles"]["0.5"] == pytest.approx(np.quantile(gaps, 0.5), rel=1e-12, abs=1e-15)
    assert g["max"] == pytest.approx(gaps.max(), rel=1e-12, abs=1e-15)
    assert "completeness_gap" not in s["methods"]["gradient"]  # gradient defines no gap
    sums = serial(model, x, "gradient").reshape(N, -1).sum(1)
    assert s["methods"]["gradient"]["map_sum"]["mean"] == pytest.approx(sums.mean(), rel=1e-12)
    assert s["job"]["seed"] == SEED and [m["name"] for m in s["job"]["methods"]] == METHODS


def test_user_metrics_are_stored_and_summarised(data, tmp_path):
    model, x = data
    metric = {"abs_mass": lambda model, xb, a, t: np.abs(a).reshape(a.shape[0], -1).sum(1)}
    r = run(data, tmp_path, methods=["gradient"], metrics=metric, chunk=8, scheduler="sync")
    ref = np.abs(serial(model, x, "gradient")).reshape(N, -1).sum(1)
    assert r.summary["methods"]["gradient"]["abs_mass"]["mean"] == pytest.approx(ref.mean(), rel=1e-12)


def deletion_auc(model, x, maps, target):
    """Deletion AUC (xattr.evaluation, Petsiuk et al. 2018) of channel-summed maps, 8 steps."""
    from xattr import evaluation as ev

    return ev.deletion_curve(model, x, target, xattr.reduce_channels(maps, "sum"), n_steps=8).auc


def test_evaluation_metric_per_image_equals_direct_call(data, tmp_path):
    model, x = data
    r = run(data, tmp_path, methods=["gradient"], metrics={"deletion_auc": deletion_auc}, chunk=8,
            scheduler="processes", workers=2)
    import zarr

    got = zarr.open_group(r.store, mode="r")["stats/gradient/deletion_auc"][:]
    ref = np.concatenate([deletion_auc(model, x[s:s + BS], serial(model, x[s:s + BS], "gradient"),
                                       model.forward(x[s:s + BS]).argmax(1)) for s in range(0, N, BS)])
    assert np.array_equal(got, ref)
    assert r.summary["methods"]["gradient"]["deletion_auc"]["quantiles"]["0.5"] == pytest.approx(np.median(ref))


# -- model identity ----------------------------------------------------------------------------
def test_model_fingerprint_tracks_weights_and_architecture():
    a, b = tiny_model(), tiny_model()
    assert batch.model_fingerprint(a)["sha256"] == batch.model_fingerprint(b)["sha256"]
    b["dense1"].weight = b["dense1"].weight + np.eye(3, 4) * 1e-12
    assert batch.model_fingerprint(a)["sha256"] != batch.model_fingerprint(b)["sha256"]
    c = tiny_model()
    c["conv2"].stride = (2, 2)
    assert batch.model_fingerprint(a)["sha256"] != batch.model_fingerprint(c)["sha256"]


def test_load_model_from_file_or_factory(tmp_path, data):
    from xattr import models

    model, x = data
    loaded, info = batch.load_model(models.save(model, str(tmp_path / "m")))
    assert batch.model_fingerprint(loaded)["sha256"] == batch.model_fingerprint(model)["sha256"]
    assert info.input["channels"] == 3
    factory_model, none = batch.load_model("xattr.cli:demo_model")
    assert isinstance(factory_model, Sequential) and none is None
    with pytest.raises(ValueError, match="missing.json"):
        batch.load_model(str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="cannot import model factory 'xattr.cli:nope'"):
        batch.load_model("xattr.cli:nope")


# -- resume ------------------------------------------------------------------------------------
def test_resume_skips_finished_chunks_and_refuses_changed_jobs(data, tmp_path):
    model, x = data
    Counter.seen, Counter.fail_after = 0, 2 * 8 + 1  # probe (1 image) + two chunks of 8, then interrupted
    kw = dict(methods=["test_counting_gradient"], chunk=8, scheduler="sync")
    with pytest.raises(Interrupted):
        run(data, tmp_path, **kw)
    assert Counter.seen == 17
    with pytest.raises(batch.BatchError, match="already exists; pass resume=True"):
        run(data, tmp_path, **kw)
    Counter.seen, Counter.fail_after = 0, None
    r = run(data, tmp_path, resume=True, **kw)
    assert Counter.seen == N - 16  # only the unfinished chunk ran
    assert (r.chunks_total, r.chunks_skipped, r.chunks_run) == (3, 2, 1)
    assert np.array_equal(batch.read_maps(r.store, "test_counting_gradient"), serial(model, x, "gradient"))
    Counter.seen = 0
    r = run(data, tmp_path, resume=True, **kw)  # everything done: nothing recomputed
    assert Counter.seen == 0 and r.chunks_run == 0 and r.chunks_skipped == 3
    with pytest.raises(batch.JobMismatchError, match="differs in seed"):
        run(data, tmp_path, resume=True, seed=SEED + 1, **kw)
    with pytest.raises(batch.JobMismatchError, match="differs in methods"):
        run(data, tmp_path, resume=True, **{**kw, "methods": ["gradient"]})
    other = tiny_model(rng=5)
    with pytest.raises(batch.JobMismatchError, match="differs in model"):
        batch.attribute_dataset(other, x, methods=kw["methods"], chunk=8, batch_size=BS, seed=SEED,
                                out=str(tmp_path / "s.zarr"), resume=True, scheduler="sync")
    with pytest.raises(batch.JobMismatchError, match="differs in chunk"):
        run(data, tmp_path, resume=True, **{**kw, "chunk": 4})


# -- a worker dies mid-job ---------------------------------------------------------------------
def test_killed_worker_job_completes_and_matches_serial(data, tmp_path, cluster):
    model, x = data
    c, client = cluster
    client.wait_for_workers(2, timeout=60)
    pids = client.run(os.getpid)  # {worker address: pid}
    victim = sorted(pids.values())[0]
    killed, after = [], []

    def kill_after_first(record):
        if killed:
            after.append(record)
        else:
            os.kill(victim, signal.SIGKILL)
            killed.append(record)

    r = run(data, tmp_path, methods=["test_slow_gradient"], chunk=2, scheduler=client, on_chunk_done=kill_after_first)
    assert len(killed) == 1 and len(after) == N // 2 - 1  # killed mid-job: 11 chunks still to come
    assert any(rec["pid"] != victim for rec in after)  # the job went on in the other processes
    assert r.chunks_run + r.summary["chunks"]["reused_after_retry"] == r.chunks_total == N // 2
    assert np.array_equal(batch.read_maps(r.store, "test_slow_gradient"), serial(model, x, "gradient"))
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the worker
    assert victim not in client.run(os.getpid).values()


# -- bad input ---------------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(3)
    for i in range(5):
        Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(d / f"img{i}.png")
    (d / "img2.png").write_bytes(b"this is not a png")  # unreadable, in the middle
    (d / "notes.txt").write_text("ignored: not an image extension")
    return d


def read_png(path):
    return (np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255).transpose(2, 0, 1)


def test_folder_unreadable_image_stop_names_it(data, folder, tmp_path):
    with pytest.raises(batch.ImageReadError, match="img2.png") as info:
        run(data, tmp_path, images=str(folder), methods=["gradient"], chunk=2, batch_size=1, scheduler="threads")
    assert info.value.path.endswith("img2.png") and info.value.index == 2


def test_folder_unreadable_image_continue_reports_and_goes_on(data, folder, tmp_path):
    model, _ = data
    r = run(data, tmp_path, images=str(folder), methods=["gradient"], chunk=2, batch_size=1,
            scheduler="processes", workers=2, on_error="continue")
    assert [(b["index"], b["file"]) for b in r.bad_images] == [(2, "img2.png")]
    assert "img2.png" in json.load(open(r.summary_path))["bad_images"][0]["file"]
    got = batch.read_maps(r.store, "gradient")
    assert np.isnan(got[2]).all()
    for i in (0, 1, 3, 4):
        xi = read_png(folder / f"img{i}.png")[None]
        assert np.array_equal(got[i], xattr.gradient(model, xi, model.forward(xi).argmax(1))[0])
    assert r.summary["n_valid"] == 4 and r.summary["methods"]["gradient"]["map_sum"]["count"] == 4


def test_folder_image_of_another_size_is_reported(data, folder, tmp_path):
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(folder / "img9.png")
    r = run(data, tmp_path, images=str(folder), methods=["gradient"], chunk=2, batch_size=1, scheduler="sync",
            on_error="continue")
    assert [b["file"] for b in r.bad_images] == ["img2.png", "img9.png"]
    assert "9x8" in r.bad_images[1]["error"]


def test_store_path_not_writable(data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(batch.BatchError, match="not writable"):
        batch.attribute_dataset(data[0], data[1], methods=["gradient"], out=str(blocker / "s.zarr"), chunk=8)
    with pytest.raises(batch.BatchError, match="not an xattr batch store"):
        batch.attribute_dataset(data[0], data[1], methods=["gradient"], out=str(blocker), chunk=8, resume=True)


def test_unknown_method_or_option_and_bad_settings(data, tmp_path):
    model, x = data
    out = str(tmp_path / "s.zarr")
    with pytest.raises(ValueError, match="unknown method 'no_such_method'; known methods: gradient"):
        batch.attribute_dataset(model, x, methods=["no_such_method"], out=out)
    with pytest.raises(ValueError, match="method 'grad_cam' has no option 'steps'; its options are: layer, relu"):
        batch.attribute_dataset(model, x, methods=[("grad_cam", {"steps": 3})], out=out)
    with pytest.raises(ValueError, match="set by the batch job"):
        batch.attribute_dataset(model, x, methods=[("test_noisy_gradient", {"rng": 1})], out=out)
    with pytest.raises(ValueError, match="batch_size must be a positive int dividing chunk=8"):
        batch.attribute_dataset(model, x, methods=["gradient"], out=out, chunk=8, batch_size=3)
    with pytest.raises(ValueError, match="on_error must be 'stop' or 'continue'"):
        batch.attribute_dataset(model, x, methods=["gradient"], out=out, on_error="ignore")
    with pytest.raises(ValueError, match=r"targets must be .* shape \(N,\) = \(24,\)"):
        batch.attribute_dataset(model, x, np.zeros(3, int), methods=["gradient"], out=out)
    with pytest.raises(ValueError, match="scheduler must be"):
        batch.attribute_dataset(model, x, methods=["gradient"], out=out, scheduler="gpu")
    with pytest.raises(TypeError, match="'test_int_map' .* returned dtype int64; batch jobs store float maps"):
        batch.attribute_dataset(model, x, methods=["test_int_map"], out=str(tmp_path / "c.zarr"))
    with pytest.raises(ValueError, match="model failed on image 0: .*must have 3 channel"):  # the method's own error
        batch.attribute_dataset(model, x[:, :1], methods=["gradient"], out=str(tmp_path / "c.zarr"))
    assert not os.path.exists(tmp_path / "c.zarr")  # nothing created for a job that cannot run


def test_missing_extra_gives_install_hint(monkeypatch, data, tmp_path):
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(ImportError, match=r"optional extra 'batch'.*xattr-ref\[batch\]"):
        batch.attribute_dataset(data[0], data[1], methods=["gradient"], out=str(tmp_path / "s.zarr"))


# -- command line ------------------------------------------------------------------------------
def test_cli_batch_runs_and_resumes(data, folder, tmp_path, capsys):
    from xattr import models
    from xattr.cli import main

    model, _ = data
    spec = {"channels": 3, "height": 8, "width": 8, "range": [0.0, 2.0], "mean": [0.5] * 3, "std": [0.25] * 3}
    mfile = models.save(model, str(tmp_path / "m"), input_spec=spec)
    Image.fromarray(np.zeros((9, 8, 3), np.uint8) + 100).save(folder / "img9.png")  # resized to the declared 8x8
    args = ["batch", str(folder), "--model", mfile, "--method", "gradient", "--method", "grad_cam:relu=false",
            "--out", str(tmp_path / "cli.zarr"), "--chunk", "2", "--scheduler", "sync", "--on-error", "continue"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "images: 6 (6 in verified chunks, 5 valid)" in out and "unreadable image 2 img2.png" in out
    assert "grad_cam" in out
    got = batch.read_maps(tmp_path / "cli.zarr", "gradient")
    xin = (2.0 * read_png(folder / "img0.png")[None] - 0.5) / 0.25  # the model file's range and normalisation
    assert np.array_equal(got[0], xattr.gradient(model, xin, model.forward(xin).argmax(1))[0])
    # the reader's stated rule: values / 255, then Pillow's bilinear resize of the float values per channel
    rgb9 = np.asarray(Image.open(folder / "img9.png").convert("RGB"), dtype=np.float64) / 255
    pix9 = np.stack(
        [
            np.asarray(
                Image.fromarray(rgb9[..., c].astype(np.float32), mode="F").resize((8, 8), Image.BILINEAR),
                dtype=np.float64,
            )
            for c in range(3)
        ],
        axis=-1,
    )
    x9 = (2.0 * pix9.transpose(2, 0, 1)[None] - 0.5) / 0.25
    assert np.array_equal(got[5], xattr.gradient(model, x9, model.forward(x9).argmax(1))[0])
    assert main(args + ["--resume"]) == 0
    assert "0 run now, 3 already done, 3 verified" in capsys.readouterr().out
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args[:4] + ["--method", "nope", "--out", str(tmp_path / "x.zarr")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(args[:2] + ["--model", str(tmp_path / "absent"), "--method", "gradient", "--out", "y.zarr"]) == 2
    assert "absent.json" in capsys.readouterr().err


# -- store integrity ------------------------------------------------------------------
def _chunk_file(store, key, i):
    """Path of chunk ``i`` of the array ``key`` (Zarr v3 default layout, maps: c/i/0/0/0)."""
    import zarr

    ndim = zarr.open_group(store, mode="r")[key].ndim
    return os.path.join(store, *key.split("/"), "c", str(i), *(["0"] * (ndim - 1)))


def _damage(store, how):
    """Damage chunk 1 (and 2 for a swap) of the store's files as a disk, a copy or a person might."""
    f1, f2 = _chunk_file(store, "maps/gradient", 1), _chunk_file(store, "maps/gradient", 2)
    if how == "missing":
        os.remove(f1)
    elif how == "truncated":
        data = open(f1, "rb").read()
        open(f1, "wb").write(data[: len(data) // 2])
    elif how == "flipped":
        data = bytearray(open(f1, "rb").read())
        data[len(data) // 2] ^= 0x10
        open(f1, "wb").write(bytes(data))
    elif how == "swapped":
        a, b = open(f1, "rb").read(), open(f2, "rb").read()
        open(f1, "wb").write(b)
        open(f2, "wb").write(a)
    elif how == "stats":  # another array of the chunk: its completeness gaps
        os.remove(_chunk_file(store, "stats/test_gxi_gap/completeness_gap", 1))
    elif how == "record_garbled":
        open(os.path.join(store, "done", "c", "1"), "wb").write(b"\x00garbage")
    elif how == "records_swapped":
        d1, d2 = (os.path.join(store, "done", "c", str(i)) for i in (1, 2))
        a, b = open(d1, "rb").read(), open(d2, "rb").read()
        open(d1, "wb").write(b)
        open(d2, "wb").write(a)
    return {"swapped": {1, 2}, "records_swapped": {1, 2}}.get(how, {1})


DAMAGE = ["missing", "truncated", "flipped", "swapped", "stats", "record_garbled", "records_swapped"]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_chunks_are_found_by_verify_and_recomputed_by_resume(data, tmp_path, capsys, how):
    from xattr.cli import main

    model, x = data
    x = x[:8]
    methods = ["gradient", "test_gxi_gap"]
    r = run(data, tmp_path, images=x, methods=methods, chunk=2, scheduler="sync")
    before = {m: batch.read_maps(r.store, m) for m in methods}
    assert r.summary["chunks"]["verified"] == 4 and batch.verify_store(r.store)["damaged"] == {}
    hit = _damage(r.store, how)
    report = batch.verify_store(r.store)
    assert set(report["damaged"]) == hit and report["images_verified"] == 2 * (4 - len(hit))
    assert main(["batch", "--verify", r.store]) == 1  # read-only check: says which, changes nothing
    out = capsys.readouterr().out
    assert all(f"chunk {i}: damaged" in out for i in hit) and "--resume to recompute" in out
    assert set(batch.verify_store(r.store)["damaged"]) == hit
    again = run(data, tmp_path, images=x, methods=methods, chunk=2, scheduler="sync", resume=True)
    assert set(map(int, again.summary["chunks"]["recomputed_damaged"])) == hit
    assert again.chunks_run == len(hit) and again.chunks_skipped == 4 - len(hit)
    assert again.summary["chunks"]["verified"] == 4 and again.summary["n_verified"] == 8
    for m in methods:  # the recomputed maps are the original bits
        assert np.array_equal(batch.read_maps(again.store, m), before[m])
    assert main(["batch", "--verify", r.store]) == 0
    assert "4 verified (8 images), 0 damaged" in capsys.readouterr().out


def test_summary_counts_only_verified_chunks(data, tmp_path):
    model, x = data
    r = run(data, tmp_path, images=x[:8], methods=["gradient"], chunk=2, scheduler="sync")
    import zarr

    root = zarr.open_group(r.store, mode="r+")
    description = dict(root.attrs)["xattr_batch"]
    _damage(r.store, "flipped")
    plan = batch.task._Plan(r.store, 8, 2, BS, [], SEED, "predicted", None, [], "stop", "array", "", (8, 8), "float64")
    summary, _ = batch.store._summarise(root, r.store, description, batch.store._store_keys(root, description), plan,
                                  {"total": 4, "run": 0, "skipped": 4, "reused_after_retry": 0})
    assert summary["n_images"] == 8 and summary["n_verified"] == 6 and summary["chunks"]["verified"] == 3
    assert list(summary["chunks"]["unverified"]) == ["1"]
    assert summary["methods"]["gradient"]["map_sum"]["count"] == 6


def test_input_identity_is_the_content_not_names_and_sizes(data, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(d / f"i{i}.bmp")  # fixed size files
    r = run(data, tmp_path, images=str(d), methods=["gradient"], chunk=2, batch_size=1, scheduler="sync")
    size = os.path.getsize(d / "i3.bmp")
    Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(d / "i3.bmp")  # same name, same size
    assert os.path.getsize(d / "i3.bmp") == size
    with pytest.raises(batch.JobMismatchError, match="differs in images"):
        run(data, tmp_path, images=str(d), methods=["gradient"], chunk=2, batch_size=1, scheduler="sync", resume=True)
    # arrays too: one value changed, same shape and dtype
    x = data[1][:4].copy()
    run(data, tmp_path, name="a.zarr", images=x, methods=["gradient"], chunk=2, scheduler="sync")
    x[3, 0, 0, 0] += 1e-3
    with pytest.raises(batch.JobMismatchError, match="differs in images"):
        run(data, tmp_path, name="a.zarr", images=x, methods=["gradient"], chunk=2, scheduler="sync", resume=True)
    assert r.summary["n_verified"] == 4


@pytest.mark.parametrize("kw, message", [
    ({"scheduler": "gpu"}, "scheduler must be"),
    ({"scheduler": ["threads"]}, "scheduler must be"),
    ({"workers": 0}, "workers must be a positive int"),
    ({"retries": -1}, "retries must be a non-negative int"),
    ({"methods": [("integrated_gradients", {"steps": 10**9})]}, "MAX_STEPS"),
    ({"methods": [("grad_cam", {"relu": True, "nope": 1})]}, "has no option 'nope'"),
])
def test_settings_are_refused_before_the_store_is_created(data, tmp_path, kw, message):
    kw.setdefault("methods", ["gradient"])
    with pytest.raises((ValueError, TypeError), match=message):
        run(data, tmp_path, name="never.zarr", chunk=8, **kw)
    assert not os.path.exists(tmp_path / "never.zarr")


def test_old_format_store_is_refused_with_the_reason(data, tmp_path):
    import zarr

    r = run(data, tmp_path, images=data[1][:4], methods=["gradient"], chunk=2, scheduler="sync")
    root = zarr.open_group(r.store, mode="r+")
    d = dict(root.attrs)["xattr_batch"]
    root.attrs["xattr_batch"] = {**d, "format": 1}
    with pytest.raises(batch.JobMismatchError, match="format 1; this xattr writes format 2"):
        run(data, tmp_path, images=data[1][:4], methods=["gradient"], chunk=2, scheduler="sync", resume=True)
    with pytest.raises(batch.JobMismatchError, match="format 1"):
        batch.verify_store(r.store)


@pytest.mark.parametrize("argv, message", [
    (["batch", "--verify", "{tmp}/nostore.zarr"], "not an xattr batch store"),
    (["batch", "--verify", "{tmp}/s.zarr", "--model", "shapes"], "--verify STORE takes no job arguments"),
    (["batch", "{tmp}"], "batch needs --model, --method, --out"),
    (["batch", "{tmp}", "--model", "shapes", "--method", "gradient", "--out", "{tmp}/o.zarr", "--chunk", "0"],
     "--chunk must be a positive int"),
    (["batch", "{tmp}", "--model", "shapes", "--method", "gradient", "--out", "{tmp}/o.zarr", "--scheduler", "gpu"],
     "scheduler must be"),
    (["batch", "{tmp}", "--model", "shapes", "--method", "gradient", "--out", "{tmp}/o.zarr", "--target", "cat"],
     "--target must be 'predicted' or a class index"),
    (["batch", "{tmp}/x.npy", "--model", "shapes", "--method", "gradient", "--out", "{tmp}/o.zarr"],
     r"outside \[0, 1\], the model's declared input range \[0, 1\]"),
    (["batch", "{tmp}/bad.npy", "--model", "shapes", "--method", "gradient", "--out", "{tmp}/o.zarr"],
     "not a numeric .npy array"),
    (["batch", "{tmp}", "--model", "shapes", "--method", "gradient:steps", "--out", "{tmp}/o.zarr"],
     "method options must look like"),
])
def test_cli_batch_failures_are_one_line_exit_2(tmp_path, capsys, argv, message):
    from xattr.cli import main

    np.save(tmp_path / "x.npy", np.full((2, 3, 32, 32), 255, np.uint8))  # 8-bit pixels for a [0, 1] model
    np.save(tmp_path / "bad.npy", np.array([{"a": 1}], dtype=object))
    code = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("xattr: error: "), err
    import re

    assert re.search(message, err[0]), err[0]
    assert not os.path.exists(tmp_path / "o.zarr")
