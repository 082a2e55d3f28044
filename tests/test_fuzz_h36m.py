"""Fuzz the Human3.6M file readers, `diffhpe.data.read_npz` and `load_h36m`, with hypothesis (issue 17).

Valid files written by `write_h36m_npz` are damaged in every way a download, a disk or an attacker can damage
them: bytes flipped, cut, inserted; members of the zip rewritten with a valid checksum so that the damage reaches
the .npy headers and the pickles; arrays replaced by random dtypes, shapes and nested objects; files of random
bytes; pickles that name callables. Whatever happens, a load either succeeds with valid sequences or raises one of
the library's documented error types (`ValueError`, or an `OSError` for path problems) naming the file, and a
pickle never runs anything.

About 20 s in CI; with `slow` in DIFFHPE_TEST_FLAGS ten times as many examples. DIFFHPE_FUZZ_EXAMPLES sets the
number of examples per test (default 60) before that factor.
"""
import io
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from diffhpe import data
from diffhpe.data import (H36M_2D_METADATA, H36M_3D_FILE, PoseSequence, UnsafeFileError, load_h36m, read_npz,
                          write_h36m_npz)
from diffhpe.skeleton import H36M32_KEPT_JOINTS, rest_pose

SLOW = 'slow' in os.environ.get('DIFFHPE_TEST_FLAGS', '').split()
EXAMPLES = int(os.environ.get('DIFFHPE_FUZZ_EXAMPLES') or 60) * (10 if SLOW else 1)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
# hostile bytes make numpy and pickletools warn on their way to the error (dtype(align='w'), escapes in names)
pytestmark = [pytest.mark.filterwarnings('ignore::numpy.exceptions.VisibleDeprecationWarning'),
              pytest.mark.filterwarnings('ignore:invalid escape sequence:DeprecationWarning')]
DOCUMENTED = (ValueError, OSError)  # the documented error types of a reader (FileNotFoundError etc. are OSErrors)
NAME_2D = 'data_2d_h36m_gt.npz'


def _world(n:int, joints:int, seed:int)->np.ndarray:
    "(n, joints, 3) float32 world metres: the rest pose, jittered, drifting; dropped joints of 32 sit on the pelvis."
    rng = np.random.default_rng(seed)
    p17 = rest_pose()[None] + 0.02 * rng.normal(size=(n, 17, 3)) + np.linspace(0, 0.3, n)[:, None, None]
    if joints == 17: return p17.astype(np.float32)
    p32 = np.repeat(p17[:, :1], 32, axis=1)
    p32[:, list(H36M32_KEPT_JOINTS)] = p17
    return p32.astype(np.float32)


ENTRIES = {'S9': {'Walking': _world(6, 32, 0), 'Photo 1': _world(5, 32, 1)}, 'S11': {'Walking': _world(4, 17, 2)}}
with tempfile.TemporaryDirectory() as _d:
    POS3, POS2 = write_h36m_npz(_d, ENTRIES, extra={('S9', 'Walking'): 2})
    COMPRESSED = {'3d': (Path(_d)/H36M_3D_FILE).read_bytes(), '2d': (Path(_d)/NAME_2D).read_bytes()}
    np.savez(Path(_d)/H36M_3D_FILE, positions_3d=POS3)
    np.savez(Path(_d)/NAME_2D, positions_2d=POS2, metadata=H36M_2D_METADATA)
    STORED = {'3d': (Path(_d)/H36M_3D_FILE).read_bytes(), '2d': (Path(_d)/NAME_2D).read_bytes()}
FILES = {'3d': H36M_3D_FILE, '2d': NAME_2D}


def _members(raw:bytes)->dict:
    "The members {name: bytes} of a zip file."
    with zipfile.ZipFile(io.BytesIO(raw)) as z: return {n: z.read(n) for n in z.namelist()}


def _zip(members:dict)->bytes:
    "A stored zip of `members` {name: bytes}, each with its correct CRC."
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w', zipfile.ZIP_STORED) as z:
        for n, m in members.items(): z.writestr(n, m)
    return b.getvalue()


def _npy_header(shape, descr)->bytes:
    "An .npy header (version 1.0) announcing `shape` and `descr`."
    b = io.BytesIO(); np.lib.format.write_array_header_1_0(b, {'descr': descr, 'fortran_order': False, 'shape': shape})
    return b.getvalue()


def _protocol3(member:bytes)->bytes:
    "An object .npy member rewritten with a protocol-3 pickle, as numpy 1 wrote the real files."
    f = io.BytesIO(member); np.lib.format.read_magic(f); shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    return _npy_header(shape, '|O') + pickle.dumps(pickle.loads(member[f.tell():]), protocol=3)


def _write(d:Path, which:str=None, raw:bytes=None):
    "The good compressed files in `d`, with file `which` ('3d' or '2d') replaced by `raw`."
    for k, name in FILES.items(): (d/name).write_bytes(raw if k == which else COMPRESSED[k])


def _note(outcome):
    "Count `outcome` (an exception, or 'loaded') in hypothesis' statistics (pytest --hypothesis-show-statistics)."
    if not currently_in_test_context(): return
    if isinstance(outcome, Exception):  # its type and the first words of the message, without paths, numbers, names
        words = re.sub(r"\S*\.npz(\[[^]]*\])?:?|\d+|'[^']*'|\(.*", ' ', str(outcome)).split()
        outcome = f'{type(outcome).__name__}: ' + ' '.join(words[:5])
    event(outcome)


def _check_load(d:Path, named:str=None):
    "`load_h36m` on `d`: valid sequences, or a documented error whose message names the file `named` (a name in FILES)."
    try: seqs = load_h36m(d, 'gt')
    except DOCUMENTED as e:
        _note(e)
        if named is not None and not isinstance(e, FileNotFoundError):
            assert FILES[named] in str(e) or FILES['3d' if named == '2d' else '2d'] in str(e), str(e)
        return e
    _note('loaded')
    assert all(isinstance(s, PoseSequence) for s in seqs)
    for s in seqs:
        assert s.x_2d.dtype == s.x_3d.dtype == np.float32 and np.isfinite(s.x_2d).all() and np.isfinite(s.x_3d).all()
    return seqs


def _check_read(path:Path):
    "`read_npz` on `path`: a dict of arrays or a documented error naming the file."
    try: out = read_npz(path)
    except DOCUMENTED as e:
        assert path.name in str(e), str(e)
        return e
    assert isinstance(out, dict) and all(isinstance(v, np.ndarray) for v in out.values())
    return out


OPS = st.lists(st.tuples(st.sampled_from(['flip', 'truncate', 'delete', 'insert', 'byte', 'int32']),
                         st.integers(0, 2**20), st.integers(0, 2**32 - 1)), min_size=1, max_size=4)


def _mutate(raw:bytes, ops)->bytes:
    "`raw` with the byte operations `ops` applied (positions taken modulo the length)."
    b = bytearray(raw)
    for op, pos, arg in ops:
        if not b: break
        p = pos % len(b)
        if op == 'flip': b[p] ^= 1 << (arg % 8)
        elif op == 'truncate': del b[p:]
        elif op == 'delete': del b[p:p + 1 + arg % 64]
        elif op == 'insert': b[p:p] = bytes([arg % 256]) * (1 + arg % 7)
        elif op == 'byte': b[p] = arg % 256
        else: b[p:p + 4] = arg.to_bytes(4, 'little')
    return bytes(b)


def test_templates_load():
    "The unmutated files load, to the same arrays as np.load gives (these files are trusted: written above)."
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); _write(d)
        assert len(_check_load(d)) == 3 * 4
        for k in FILES:
            (d/FILES[k]).write_bytes(STORED[k])
            got, ref = read_npz(d/FILES[k]), np.load(d/FILES[k], allow_pickle=True)
            assert sorted(got) == sorted(ref.files)
        assert [np.array_equal(a, b) for a, b in zip(got['positions_2d'].item()['S9']['Walking'], POS2['S9']['Walking'])] == [True] * 4


@FUZZ
@given(which=st.sampled_from(['3d', '2d']), stored=st.booleans(), ops=OPS)
def test_fuzz_file_bytes(which, stored, ops):
    "Bytes of a whole file flipped, cut, inserted, overwritten."
    raw = _mutate((STORED if stored else COMPRESSED)[which], ops)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); _write(d, which, raw)
        _check_read(d/FILES[which])
        _check_load(d, which)


@FUZZ
@given(which=st.sampled_from(['3d', '2d']), member=st.integers(0, 1), numpy1=st.booleans(), ops=OPS)
def test_fuzz_member_bytes(which, member, numpy1, ops):
    "Bytes of one .npy member damaged and the zip rewritten with valid checksums: the damage reaches headers and pickles."
    members = _members(STORED[which])
    if numpy1: members = {n: _protocol3(m) if b"'descr': '|O'" in m[:128] else m for n, m in members.items()}
    name = sorted(members)[member % len(members)]
    members[name] = _mutate(members[name], ops)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); _write(d, which, _zip(members))
        _check_read(d/FILES[which])
        _check_load(d, which)


DTYPES = hnp.scalar_dtypes() | hnp.byte_string_dtypes(max_len=4) | hnp.unicode_string_dtypes(max_len=4)
NEAR = st.sampled_from([(6, 32, 3), (6, 17, 3), (8, 17, 2), (6, 17, 2), (5, 17, 2), (0, 17, 2), (0, 32, 3), (6, 17),
                        (6, 17, 3, 1), (6, 16, 2), (4, 6, 17, 2)])
ARRAYS = (hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
          | hnp.arrays(st.sampled_from([np.float32, np.float64, np.int16, np.uint8, np.float16]), NEAR)
          | hnp.arrays(st.sampled_from([np.float32, np.float64]), NEAR, elements=st.floats(-2000, 2000, width=32)))
LEAVES = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4) | st.binary(max_size=4)
          | st.complex_numbers() | ARRAYS)
OBJECTS = st.recursive(LEAVES, lambda c: st.lists(c, max_size=4) | st.tuples(c, c)
                       | st.dictionaries(st.text(max_size=3) | st.integers(), c, max_size=3)
                       | hnp.arrays(object, st.integers(0, 4), elements=c), max_leaves=8)
TARGETS = ['3d leaf', '3d subject', '3d all', '2d view', '2d views', '2d subject', '2d all', 'metadata']


def _replace(target:str, value):
    "Deep copies of POS3, POS2 and the metadata with the part `target` replaced by `value`."
    pos3 = {s: dict(a) for s, a in POS3.items()}
    pos2 = {s: {a: list(v) for a, v in acts.items()} for s, acts in POS2.items()}
    meta = dict(H36M_2D_METADATA)
    if target == '3d leaf': pos3['S9']['Walking'] = value
    elif target == '3d subject': pos3['S11'] = value
    elif target == '3d all': pos3 = value
    elif target == '2d view': pos2['S9']['Photo 1'][2] = value
    elif target == '2d views': pos2['S11']['Walking'] = value
    elif target == '2d subject': pos2['S9'] = value
    elif target == '2d all': pos2 = value
    else: meta = value
    return pos3, pos2, meta


def _boxed(x)->np.ndarray:
    "`x` as np.savez stores it: an array as is, anything else in a 0-d object array (as the real files hold their dicts)."
    if isinstance(x, np.ndarray): return x
    a = np.empty((), object); a[()] = x
    return a


@FUZZ
@given(target=st.sampled_from(TARGETS), value=OBJECTS, compressed=st.booleans())
def test_fuzz_content(target, value, compressed):
    "Parts of the dictionaries replaced by random dtypes, shapes and nested objects."
    pos3, pos2, meta = _replace(target, value)
    save = np.savez_compressed if compressed else np.savez
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        save(d/H36M_3D_FILE, positions_3d=_boxed(pos3))
        save(d/NAME_2D, positions_2d=_boxed(pos2), metadata=_boxed(meta))
        _check_read(d/H36M_3D_FILE); _check_read(d/NAME_2D)
        _check_load(d, target[:2] if target != 'metadata' else '2d')


@FUZZ
@given(which=st.sampled_from(['3d', '2d']), prefix=st.sampled_from([b'', b'PK\x03\x04', b'PK\x05\x06', b'\x93NUMPY\x01\x00']),
       raw=st.binary(max_size=600))
def test_fuzz_random_bytes(which, prefix, raw):
    "Files of random bytes, some starting like a zip or an .npy file."
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); _write(d, which, prefix + raw)
        _check_read(d/FILES[which])
        assert isinstance(_check_load(d, which), ValueError)


CALLS = [('posix', 'system'), ('os', 'system'), ('builtins', 'open'), ('io', 'open'), ('builtins', 'exec'),
         ('builtins', 'eval'), ('subprocess', 'call'), ('pathlib', 'Path'), ('numpy', 'load'), ('numpy', 'frombuffer'),
         ('numpy.lib.npyio', 'load'), ('numpy.core.multiarray', 'empty'), ('numpy._core.multiarray', 'empty'),
         ('builtins', 'getattr'), ('builtins', '__import__'), ('copyreg', '_reconstructor'), ('_codecs', 'encode')]
ADMITTED = [('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', '_reconstruct'),
            ('numpy._core.multiarray', '_reconstruct'), ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar')]
# printable names; no backslash: pickletools escape-decodes GLOBAL names, so the size scan refuses a name ending in one
# as malformed (a plain ValueError, nothing built) before the unpickler could name it in an UnsafeFileError
NAMES = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='\\'), min_size=1, max_size=12)


def _call_pickle(module:str, name:str, args:tuple, protocol4:bool)->bytes:
    "A pickle that imports `module.name` and calls it with `args` (strings), by GLOBAL (protocol 3) or STACK_GLOBAL (4)."
    def s(x): b = x.encode(); return b'X' + len(b).to_bytes(4, 'little') + b
    get = (s(module) + s(name) + b'\x93') if protocol4 else b'c' + module.encode() + b'\n' + name.encode() + b'\n'
    return (b'\x80\x04' if protocol4 else b'\x80\x03') + get + b'(' + b''.join(map(s, args)) + b'tR.'


@FUZZ
@given(call=st.sampled_from(CALLS + ADMITTED) | st.tuples(NAMES, NAMES), protocol4=st.booleans(), nested=st.booleans())
def test_fuzz_pickled_calls(call, protocol4, nested):
    "A pickle naming any callable outside the format is refused, naming it, and nothing runs."
    module, name = call
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); target = d/'created'
        args = (f'touch {target}',) if name == 'system' else (str(target), 'w')
        payload = _call_pickle(module, name, args, protocol4)
        if nested:  # the call inside the format's dict: {'S9': {'Walking': <call>}}
            payload = payload[:2] + b'}X\x02\x00\x00\x00S9}X\x07\x00\x00\x00Walking' + payload[2:-1] + b's' + b's.'
        member = _npy_header((), '|O') + payload
        _write(d, '3d', _zip({'positions_3d.npy': member}))
        e = _check_read(d/H36M_3D_FILE)
        assert isinstance(e, ValueError)
        if call in ADMITTED: assert not isinstance(e, UnsafeFileError), str(e)
        else: assert isinstance(e, UnsafeFileError) and f'refused to load {module}.{name}' in str(e), str(e)
        assert isinstance(_check_load(d, '3d'), ValueError)
        assert not target.exists()


DEEP = {'tuple key': lambda n: b'\x80\x03}' + b')' + b'\x85' * n + b'Ns.',  # {((((),),),): None}
        'frozenset key': lambda n: b'\x80\x04}' + b'(' * n + b'\x91' * n + b'Ns.',  # {frozenset({frozenset(...)}): None}
        'list': lambda n: b'\x80\x03' + b']' * n + b'a' * (n - 1) + b'.',  # [[[[]]]]
        'dict': lambda n: b'\x80\x03' + b'}X\x01\x00\x00\x00k' * n + b'N' + b's' * n + b'.',  # {'k': {'k': ...}}
        'steps': lambda n: b'\x80\x03' + b'N0' * n + b'N.'}  # None, popped n times: 2n steps, nothing nested


@pytest.mark.parametrize('kind', list(DEEP))
@pytest.mark.parametrize('n', [10, 1000, 10**6])
def test_deep_nesting(kind, n, monkeypatch):
    "Deep nesting (a million-deep tuple key kills CPython when it hashes it) and endless pickles are refused unbuilt."
    monkeypatch.setitem(data._PICKLE_LIMITS, 'steps', 10_000)  # the real limit, a million steps, takes seconds to reach
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); _write(d, '3d', _zip({'positions_3d.npy': _npy_header((), '|O') + DEEP[kind](n)}))
        e = _check_read(d/H36M_3D_FILE)
        refused = n >= 10**6 or n > 100 and kind != 'steps'  # 2,000 steps pass, 2 million do not
        assert isinstance(e, ValueError) and isinstance(e, UnsafeFileError) == refused, str(e)
        assert isinstance(_check_load(d, '3d'), ValueError)
