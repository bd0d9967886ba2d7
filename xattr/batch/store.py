"""The Zarr store: creating it, reopening it for the same job, verifying each chunk against its checksum, reading
maps back, and the JSON summary over the verified chunks."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from .errors import BatchError, JobMismatchError, _require_extra
from .job import JOB_FORMAT, _diff

#: quantiles reported in the summaries.
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def _chunk_digest(arrays):
    """SHA-256 over a chunk's slices of every stored array: keys sorted, each key, dtype, shape and bytes."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _store_keys(root, description):
    """The arrays a chunk writes, as the store holds them (the job's methods, their stats, target/score/valid)."""
    keys = ["target", "score", "valid"]
    for m in description["methods"]:
        keys.append(f"maps/{m['label']}")
        keys += [f"stats/{m['label']}/{name}" for name in sorted(root[f"stats/{m['label']}"].array_keys())]
    return keys


def _read_record(root, index):
    """``(record dict or None, problem or None)`` of chunk ``index``'s ``done`` entry."""
    try:
        text = str(root["done"][index])
    except Exception as exc:  # the record's own Zarr chunk is damaged
        return None, f"its done record cannot be read ({type(exc).__name__})"
    if not text:
        return None, None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None, "its done record is not JSON (corrupted)"
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return None, "its done record has no checksum"
    if record.get("chunk") != index:
        return None, f"its done record belongs to chunk {record.get('chunk')!r} (swapped records)"
    return record, None


def _verify_chunk(root, keys, index, bounds):
    """``(record or None, problem or None, stats)``: recompute chunk ``index``'s digest from the store.

    ``problem`` None means verified; ``stats`` then holds its ``valid`` and ``stats/...`` slices (for the
    summary).  A chunk that was never finished has record None and problem None.
    """
    record, problem = _read_record(root, index)
    if record is None:
        return None, problem, None
    start, stop = bounds
    if (record.get("start"), record.get("stop")) != (start, stop):
        return (
            None,
            f"its done record covers images {record.get('start')}..{record.get('stop')}, not {start}..{stop}",
            None,
        )
    data = {}
    for key in keys:
        try:
            data[key] = root[key][start:stop]
        except Exception as exc:  # a truncated or garbled Zarr chunk file does not decode
            return None, f"{key} cannot be read ({type(exc).__name__}: {str(exc)[:80]})".replace("\n", " "), None
    if _chunk_digest(data) != record["sha256"].lower():
        return (
            None,
            "its data do not match the checksum of what was written (missing, swapped or altered chunk files)",
            None,
        )
    return record, None, {k: v for k, v in data.items() if not k.startswith("maps/")}


def verify_store(out):
    """Recompute every finished chunk's checksum; returns ``{"chunks", "verified", "damaged", "unfinished",
    "images_verified", "description"}`` (``damaged``: ``{chunk: reason}``).  Read-only.

    Raises :class:`BatchError` when ``out`` is not a batch store of this format.
    """
    _require_extra()
    import zarr

    out = os.fspath(out)
    try:
        root = zarr.open_group(out, mode="r")
        description = dict(root.attrs)["xattr_batch"]
        n_chunks = int(root["done"].shape[0])
    except Exception as exc:
        raise BatchError(f"{out!r} is not an xattr batch store ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    _check_format(out, description)
    keys = _store_keys(root, description)
    n, chunk = description["images"]["n"], description["chunk"]
    verified, damaged, unfinished, images = [], {}, [], 0
    for i in range(n_chunks):
        bounds = (i * chunk, min(n, (i + 1) * chunk))
        record, problem, _ = _verify_chunk(root, keys, i, bounds)
        if problem:
            damaged[i] = problem
        elif record is None:
            unfinished.append(i)
        else:
            verified.append(i)
            images += bounds[1] - bounds[0]
    return {"chunks": n_chunks, "verified": verified, "damaged": damaged, "unfinished": unfinished,
            "images_verified": images, "description": description}


def _check_format(out, stored):
    if not isinstance(stored, dict) or stored.get("format") != JOB_FORMAT:
        found = stored.get("format") if isinstance(stored, dict) else None
        raise JobMismatchError(
            f"{out!r} is a batch store of format {found!r}; this xattr writes format {JOB_FORMAT} (chunk checksums): "
            "write to a new store"
        )


def _summary_path(out):
    base = out[:-5] if out.endswith(".zarr") else out
    return base.rstrip("/\\") + ".summary.json"


def _check_writable(out):
    parent = os.path.dirname(os.path.abspath(out)) or "."
    probe = parent
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK):
        raise BatchError(f"the store path {out!r} is not writable ({probe!r} is not a writable folder)")


def _open_existing(out, description, resume):
    import zarr

    if not resume:
        raise BatchError(f"the store {out!r} already exists; pass resume=True (--resume) to continue that job, "
                         f"or choose another output path")
    try:
        root = zarr.open_group(out, mode="r+")
        stored = dict(root.attrs)["xattr_batch"]
    except Exception as exc:
        raise BatchError(f"{out!r} exists but is not an xattr batch store ({type(exc).__name__}: {exc})") from None
    _check_format(out, stored)
    changed = _diff(stored, description)
    if changed:
        lines = [f"  {k}: stored {json.dumps(stored.get(k))[:200]}, now {json.dumps(description.get(k))[:200]}"
                 for k in changed]
        raise JobMismatchError(
            f"refusing to resume {out!r}: the job description differs in {', '.join(changed)}:\n" + "\n".join(lines)
            + "\nresume with the original settings, or write to a new store"
        )
    return root


def _create_store(out, description, plan, n_chunks):
    import zarr

    try:
        root = zarr.open_group(out, mode="w-")
        for s in plan.methods:
            root.create_array(f"maps/{s.label}", shape=(plan.n,) + tuple(s.shape),
                              chunks=(plan.chunk,) + tuple(s.shape), dtype=s.dtype, fill_value=np.nan)
            names = ["map_sum"] + (["completeness_gap"] if s.has_delta else []) + [m for m, _ in plan.metrics]
            for name in names:
                root.create_array(f"stats/{s.label}/{name}", shape=(plan.n,), chunks=(plan.chunk,),
                                  dtype="float64", fill_value=np.nan)
        root.create_array("target", shape=(plan.n,), chunks=(plan.chunk,), dtype="int64", fill_value=-1)
        root.create_array("score", shape=(plan.n,), chunks=(plan.chunk,), dtype="float64", fill_value=np.nan)
        root.create_array("valid", shape=(plan.n,), chunks=(plan.chunk,), dtype="bool", fill_value=False)
        root.create_array("done", shape=(n_chunks,), chunks=(1,), dtype=str, fill_value="")
        # the description goes last: a store without it was never started and may be removed by hand
        root.attrs["xattr_batch"] = description
    except OSError as exc:
        raise BatchError(f"cannot create the store at {out!r}: {type(exc).__name__}: {exc}") from None
    return root


def _stats(values):
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"count": 0}
    q = np.quantile(v, QUANTILES)
    return {"count": int(v.size), "mean": float(v.mean()), "std": float(v.std()), "mean_abs": float(np.abs(v).mean()),
            "min": float(v.min()), "max": float(v.max()),
            "quantiles": {f"{p:g}": float(x) for p, x in zip(QUANTILES, q)}}


def _summarise(root, out, description, keys, plan, counts):
    """The summary, over the chunks whose checksum verifies now (read back from the store)."""
    n_chunks = counts["total"]
    records, parts, unverified = [], {}, {}
    for i in range(n_chunks):
        record, problem, data = _verify_chunk(root, keys, i, plan.bounds(i))
        if record is None:
            unverified[str(i)] = problem or "not finished"
            continue
        records.append(record)
        for k, v in data.items():
            parts.setdefault(k, []).append(v)
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    valid = cat.get("valid", np.zeros(0, bool))
    counts = dict(counts, verified=len(records), unverified=unverified)
    summary = {
        "store": os.path.abspath(out),
        "job": description,
        "n_images": int(plan.n),
        "n_verified": int(valid.size),
        "n_valid": int(valid.sum()),
        "bad_images": [b for r in records for b in r["bad"]],
        "chunks": counts,
        "methods": {},
    }
    for m in description["methods"]:
        label = m["label"]
        entry = {"name": m["name"], "options": m["options"]}
        prefix = f"stats/{label}/"
        for key in keys:
            if key.startswith(prefix):
                entry[key[len(prefix):]] = _stats(cat.get(key, np.zeros(0)))
        summary["methods"][label] = entry
    path = _summary_path(out)
    tmp = f"{path}.{os.getpid()}.partial"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(tmp, path)
    return summary, path


def read_maps(out, label):
    """The maps of one method from a finished store, as an ndarray ``(N, ...)``.

    Parameters
    ----------
    out : str or path-like
        The store's folder.
    label : str
        The method's label in the store.

    Returns
    -------
    ndarray ``(N, ...)``
    """
    _require_extra()
    import zarr

    return zarr.open_group(os.fspath(out), mode="r")[f"maps/{label}"][:]
