"""Fuzz the readers and input checks of `diffhpe.lifting` with hypothesis (issue 17).

`read_coco_json` gets random JSON structures and random detection records (as content and as file bytes, cut or
not); `read_keypoints` random arrays of many dtypes and shapes, as arrays, tensors and .npy/.npz/.json files, intact,
cut or with bytes flipped; `LiftResult.load` saved results that were damaged, or whose members were replaced; `lift`
random arguments with a stub model that costs nothing. Whatever happens, a call either succeeds with a valid value
or raises one of the library's documented error types: `ValueError` (bad content or arguments), an `OSError` for a
path, and, for `lift` only, a `RuntimeError` for the environment (a device this build lacks). A pickle never runs.

About 30 s in CI; with `slow` in DIFFHPE_TEST_FLAGS ten times as many examples. DIFFHPE_FUZZ_EXAMPLES sets the
number of examples per test (default 30) before that factor.
"""
import io
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from diffhpe.lifting import LiftResult, MAX_GAP, lift, read_coco_json, read_keypoints

torch.set_num_threads(1)
SLOW = 'slow' in os.environ.get('DIFFHPE_TEST_FLAGS', '').split()
EXAMPLES = int(os.environ.get('DIFFHPE_FUZZ_EXAMPLES') or 30) * (10 if SLOW else 1)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                       HealthCheck.function_scoped_fixture])
DOCUMENTED = (ValueError, OSError)  # a reader's documented error types (FileNotFoundError, IsADirectoryError, ... are OSErrors)
TMP = Path(tempfile.mkdtemp(prefix='diffhpe-fuzz-lifting-'))


def _check_keypoints(out):
    "A reader's success: ((T, J, C) float64 array, None or two numbers)."
    x, size = out
    assert isinstance(x, np.ndarray) and x.dtype == np.float64, (type(x), getattr(x, 'dtype', None))
    assert size is None or len(size) == 2, size


def _expect_documented(f, *args, **kw):
    "Run f; it returns, or raises a documented error with a message."
    try: return f(*args, **kw)
    except DOCUMENTED as e:
        assert str(e), f'{type(e).__name__} without a message'
        return None


# --- read_coco_json ------------------------------------------------------------------------------------------------
json_scalars = st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=20)
numbers = st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
keypoint_lists = (st.lists(numbers, min_size=51, max_size=51) | st.lists(st.lists(numbers, min_size=3, max_size=3), min_size=17, max_size=17)
                  | st.lists(numbers, max_size=60) | json_values)
frame_ids = st.integers(-5, 600) | st.integers(-10**20, 10**20) | st.text(max_size=12) | st.floats() | json_values
record = st.fixed_dictionaries({}, optional={'image_id': frame_ids, 'frame': frame_ids, 'keypoints': keypoint_lists,
                                             'score': numbers | json_values, 'category_id': st.sampled_from([1, 1, 1, 2, '1', None, [1]])})
images = st.lists(st.fixed_dictionaries({}, optional={'width': numbers | json_values, 'height': numbers | json_values}) | json_values, max_size=3)
coco_content = (st.lists(record | json_values, max_size=6)
                | st.fixed_dictionaries({'annotations': st.lists(record, max_size=6) | json_values}, optional={'images': images | json_values})
                | json_values)


@FUZZ
@given(content=coco_content, n_frames=st.none() | st.integers(-3, 700) | json_scalars, first_frame=st.none() | st.integers(-10, 10) | json_scalars,
       max_gap=st.sampled_from([MAX_GAP, 0, 5, -1, 2.5, None]))
def test_read_coco_json_content(content, n_frames, first_frame, max_gap):
    out = _expect_documented(read_coco_json, content, n_frames, first_frame, max_gap)
    if out is not None:
        _check_keypoints(out)
        assert out[0].shape[1:] == (17, 3) and len(out[0]) >= 1


@FUZZ
@given(content=coco_content, cut=st.none() | st.integers(0, 400), junk=st.binary(max_size=40), nesting=st.integers(0, 3000))
def test_read_coco_json_files(content, cut, junk, nesting):
    text = json.dumps(content).encode()
    data = text if cut is None else text[:cut] + junk
    if nesting > 2000: data = b'[' * nesting * 50 + b']' * nesting * 50  # deep nesting
    p = TMP/'fuzz.json'
    p.write_bytes(data)
    out = _expect_documented(read_keypoints, p)
    if out is not None: _check_keypoints(out)


# --- read_keypoints ------------------------------------------------------------------------------------------------
dtypes = (hnp.boolean_dtypes() | hnp.integer_dtypes() | hnp.unsigned_integer_dtypes() | hnp.floating_dtypes() | hnp.complex_number_dtypes()
          | hnp.unicode_string_dtypes(max_len=3) | hnp.byte_string_dtypes(max_len=3) | hnp.datetime64_dtypes() | hnp.timedelta64_dtypes()
          | st.just(np.dtype([('x', 'f4'), ('y', 'f4')])) | st.just(np.dtype([('p', 'f8', (2,))])))
shapes = st.sampled_from([(4, 17, 3), (1, 17, 2), (17, 3), (0, 17, 3), (3, 16, 2), (2, 2, 17, 3), (5,), ()]) | hnp.array_shapes(min_dims=0, max_dims=4, max_side=5)
arrays = dtypes.flatmap(lambda d: shapes.flatmap(lambda s: hnp.arrays(d, s)))


@FUZZ
@given(x=arrays)
def test_read_keypoints_arrays(x):
    out = _expect_documented(read_keypoints, x)
    if out is not None: _check_keypoints(out); assert x.dtype.kind in 'iuf'
    if x.dtype.byteorder in '=|' and x.dtype.name in ('bool', 'int8', 'uint8', 'int16', 'int32', 'int64', 'float16', 'float32', 'float64', 'complex64'):
        out = _expect_documented(read_keypoints, torch.from_numpy(np.ascontiguousarray(x)))  # the same as a tensor
        if out is not None: _check_keypoints(out)


def _npy_bytes(x:np.ndarray)->bytes:
    b = io.BytesIO(); np.save(b, x, allow_pickle=False); return b.getvalue()


@FUZZ
@given(x=arrays, kind=st.sampled_from(['npy', 'npz', 'npz-two', 'npz-size', 'random']), damage=st.sampled_from(['none', 'cut', 'flip', 'insert']),
       where=st.floats(0, 1), junk=st.binary(min_size=1, max_size=64), size=st.sampled_from([None, [1000, 1002], [5], 'wide', [[1, 2]]]))
def test_read_keypoints_files(x, kind, damage, where, junk, size):
    if kind == 'npy': data, suffix = _npy_bytes(x), '.npy'
    elif kind == 'random': data, suffix = junk * 3, '.npy' if where < 0.5 else '.npz'
    else:
        b, members = io.BytesIO(), {'keypoints': x}
        if kind == 'npz-two': members = {'a': x, 'b': x}
        if kind == 'npz-size' and size is not None: members['image_size'] = np.array(size)
        np.savez(b, **members); data, suffix = b.getvalue(), '.npz'
    i = int(where * len(data))
    if damage == 'cut': data = data[:i]
    elif damage == 'flip' and data: data = data[:min(i, len(data) - 1)] + bytes([data[min(i, len(data) - 1)] ^ 0xFF]) + data[min(i, len(data) - 1) + 1:]
    elif damage == 'insert': data = data[:i] + junk + data[i:]
    p = TMP/f'fuzz{suffix}'
    p.write_bytes(data)
    out = _expect_documented(read_keypoints, p)
    if out is not None: _check_keypoints(out)


def test_read_keypoints_object_arrays_never_unpickled():
    "An object array whose pickle would create a file is refused, and the file is not created."
    marker = TMP/'pwned'
    class Payload:
        def __reduce__(self): return (Path.touch, (marker,))
    np.save(TMP/'evil.npy', np.array([Payload()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match='Python objects'): read_keypoints(TMP/'evil.npy')
    assert not marker.exists()


# --- LiftResult.load -----------------------------------------------------------------------------------------------
def _saved_result()->bytes:
    rng = np.random.default_rng(0)
    vis = rng.random((6, 17)) > 0.2
    r = LiftResult(rng.normal(0, 100, (2, 6, 17, 3)), vis, rng.uniform(0, 900, (6, 17, 2)), (1000, 1002), 50., {'model': 'fuzz', 'seed': 0})
    npz, _ = r.save(TMP/'valid')
    return npz.read_bytes()

VALID = _saved_result()
meta_texts = st.sampled_from(['{"format": "diffhpe-lift/1", "fps": 50, "settings": {}}', '{"format": "diffhpe-lift/1", "fps": 0}',
                              '{"format": "diffhpe-lift/1", "image_size": [1, 2, 3]}', '{"format": "diffhpe-lift/1", "settings": []}',
                              '{"format": "diffhpe-lift/1", "fps": "x", "image_size": "ab"}', '[' * 5000, '{bad', '[]', '"x"']) | json_values.map(json.dumps)


@FUZZ
@given(mode=st.sampled_from(['cut', 'flip', 'insert', 'members']), where=st.floats(0, 1), junk=st.binary(min_size=1, max_size=32),
       meta=meta_texts, hyps=arrays, vis=arrays, kp=st.none() | arrays, drop=st.sampled_from([None, 'meta', 'hypotheses', 'visible']))
def test_lift_result_load(mode, where, junk, meta, hyps, vis, kp, drop):
    data, i = VALID, int(where * len(VALID))
    if mode == 'cut': data = data[:i]
    elif mode == 'flip': data = data[:min(i, len(data) - 1)] + bytes([data[min(i, len(data) - 1)] ^ 0x5A]) + data[min(i, len(data) - 1) + 1:]
    elif mode == 'insert': data = data[:i] + junk + data[i:]
    else:  # valid zip members, hostile content
        members = {'meta': np.array(meta), 'hypotheses': hyps, 'visible': vis} | ({} if kp is None else {'keypoints': kp})
        if drop: members.pop(drop)
        b = io.BytesIO(); np.savez(b, **members); data = b.getvalue()
    p = TMP/'fuzz-result.npz'
    p.write_bytes(data)
    r = _expect_documented(LiftResult.load, p)
    if r is not None:
        assert r.hypotheses.ndim == 4 and np.isfinite(r.hypotheses).all() and r.fps > 0
        assert np.isfinite(r.uncertainty).all() and r.visible.shape == r.hypotheses.shape[1:3]


# --- lift's input checks -------------------------------------------------------------------------------------------
class Stub:
    "A window model that costs nothing: 9 frames, zeros in metres."
    seq_len = 9
    def sample(self, x_2d, visible=None, n_hypotheses=1, **kw):
        B, L, J, _ = x_2d.shape
        return torch.zeros(B, n_hypotheses, L, J, 3)

anything = json_scalars | st.lists(st.integers(-3, 3), max_size=3) | st.just(np.float64('nan'))
keypoint_inputs = (arrays | hnp.arrays(np.float64, st.sampled_from([(20, 17, 3), (20, 17, 2), (1, 17, 3)]),
                                       elements=st.floats(-100, 1200) | st.just(np.nan))
                   | st.builds(lambda x: x * [1, 1, 0] + [0, 0, 1], hnp.arrays(np.float64, (12, 17, 3), elements=st.floats(0, 900))))


@FUZZ
@given(kp=keypoint_inputs, image_size=st.sampled_from([(1000, 1000), (1000, 1000), None, (0, 5), (np.inf, 1), 'ab', (1, 2, 3)]) | anything,
       keypoint_format=st.sampled_from(['coco', 'h36m', 'x']) | anything, n_hypotheses=st.integers(-1, 3) | anything,
       sampler=st.sampled_from(['ddim', 'ddpm', 'euler']) | anything, steps=st.integers(-1, 12) | anything, eta=st.floats(-1, 2) | anything,
       threshold=st.floats(-1, 2) | anything, overlap=st.none() | st.integers(-2, 10) | anything, batch_size=st.integers(-1, 80) | anything,
       device=st.sampled_from([None, 'cpu', 'gpu0', 'cuda:99', 'meta']) | anything, seed=st.integers(-1, 2**64) | anything,
       blend=st.sampled_from(['hann', 'triangular', 'uniform', 'cosine']) | anything, fps=st.floats(-1, 100) | anything,
       max_gap=st.integers(-1, 300) | anything)
def test_lift_input_checks(kp, image_size, keypoint_format, n_hypotheses, sampler, steps, eta, threshold, overlap, batch_size, device, seed, blend, fps, max_gap):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            r = lift(kp, image_size, keypoint_format, Stub(), n_hypotheses, sampler, steps, eta, threshold, overlap, batch_size, device, seed, blend, fps, max_gap)
        except DOCUMENTED as e:
            assert str(e); return
        except RuntimeError as e:  # only for a device this build or machine lacks
            assert isinstance(device, str) and device.startswith(('cuda', 'meta', 'mps')), (device, e); return
    assert np.isfinite(r.hypotheses).all() and r.n_frames == len(np.asarray(kp).reshape(-1, 17, np.asarray(kp).shape[-1]))
