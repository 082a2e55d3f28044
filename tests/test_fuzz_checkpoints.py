"""Fuzz the checkpoint readers: whatever the bytes, only the documented error types escape.

The readers are `diffhpe.models.load_checkpoint`, `read_checkpoint_config`, `read_reference_state_dict`,
`diffhpe.wrapper.load_model` and `diffhpe.mixste.load_mixste_checkpoint`. Their inputs are mutated the ways a
damaged download, a full disk or a hostile file would: bytes of a real safetensors file flipped, truncated or
spliced; `config.json` replaced by random JSON (wrong types, missing fields, huge integers, deep nesting), in
checkpoints with and without the content hashes; random objects saved with `torch.save`; state dicts of the MixSTE
layout with keys dropped, renamed or reshaped. A reader may succeed or raise `ValueError` (its subclasses:
`json.JSONDecodeError`, `CheckpointChangedError`, ...) or an `OSError`; anything else (KeyError, TypeError,
IndexError, AttributeError, RecursionError, MemoryError, zipfile.BadZipFile, UnpicklingError, a RuntimeError from
torch, ...) fails the test.

Bounded to about 20 s: `DIFFHPE_FUZZ_EXAMPLES` examples per test (default 15); with 'slow' in
`DIFFHPE_TEST_FLAGS`, ten times as many.
"""
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from safetensors.torch import load_file, save_file

from diffhpe.models import CHECKPOINT_FORMAT, DiffHPE2D, DiffHPEConfig, load_checkpoint, read_checkpoint_config, read_reference_state_dict, save_checkpoint
from diffhpe.mixste import MixSTE, load_mixste_checkpoint
from diffhpe.wrapper import load_model

torch.set_num_threads(1)
N = int(os.environ.get('DIFFHPE_FUZZ_EXAMPLES', 15)) * (10 if 'slow' in os.environ.get('DIFFHPE_TEST_FLAGS', '').split() else 1)
FUZZ = settings(max_examples=N, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DOCUMENTED = (ValueError, OSError)


def only_documented(f, *args, **kwargs):
    "Call `f`; a documented error is fine, anything else propagates and fails the test."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # UnverifiedCheckpointWarning for files whose header lost its hashes
        try: f(*args, **kwargs)
        except DOCUMENTED: pass


@pytest.fixture(scope='module')
def folders():
    "Real checkpoints to mutate: a tiny DiffHPE-2D and a tiny MixSTE, each with and without hashes."
    root = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    save_checkpoint(DiffHPE2D(DiffHPEConfig(channels=8, n_blocks=1, seq_len=9)), root/'d2')
    save_checkpoint(MixSTE(seq_len=9, embed_dim=8, depth=2, num_heads=2), root/'mix')
    for name in ('d2', 'mix'):  # the same without hashes: the readers must survive unverified content too
        shutil.copytree(root/name, root/f'{name}-old')
        save_file(load_file(root/name/'model.safetensors'), str(root/f'{name}-old'/'model.safetensors'), metadata={'format': CHECKPOINT_FORMAT})
    torch.save({'model_pos': MixSTE(seq_len=9, embed_dim=8, depth=2, num_heads=2).state_dict()}, root/'mixste.pt')
    yield root
    shutil.rmtree(root, ignore_errors=True)


def copy_of(folders, name):
    d = Path(tempfile.mkdtemp())/name
    shutil.copytree(folders/name, d)
    return d


def mutate(data:bytes, draw)->bytes:
    "Flip, truncate, splice or overwrite the bytes of a file."
    how = draw(st.sampled_from(['flip', 'truncate', 'splice', 'header', 'length']))
    b = bytearray(data)
    if how == 'flip':
        for i in draw(st.lists(st.integers(0, len(b) - 1), min_size=1, max_size=8)): b[i] ^= 1 << draw(st.integers(0, 7))
    elif how == 'truncate': b = b[:draw(st.integers(0, len(b) - 1))]
    elif how == 'splice':
        i = draw(st.integers(0, len(b)))
        b[i:i + draw(st.integers(0, 64))] = draw(st.binary(max_size=64))
    elif how == 'header':  # a random JSON header of a plausible length
        head = draw(st.binary(max_size=200))
        b = bytearray(len(head).to_bytes(8, 'little') + head + bytes(b[8:]))
    else: b[:8] = draw(st.integers(0, 2**64 - 1)).to_bytes(8, 'little')  # the header length
    return bytes(b)


@FUZZ
@given(data=st.data(), name=st.sampled_from(['d2', 'mix', 'd2-old', 'mix-old']), which=st.sampled_from(['model.safetensors', 'config.json']))
def test_damaged_bytes(folders, data, name, which):
    d = copy_of(folders, name)
    (d/which).write_bytes(mutate((d/which).read_bytes(), data.draw))
    only_documented(load_model, d)
    only_documented(read_checkpoint_config, d)
    if name.startswith('d2'): only_documented(load_checkpoint, d)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)
D2_FIELDS = [f for f in DiffHPEConfig.__dataclass_fields__]
MIX_FIELDS = ['n_joints', 'seq_len', 'in_chans', 'embed_dim', 'depth', 'num_heads', 'mlp_ratio', 'qkv_bias', 'drop_rate',
              'attn_drop_rate', 'drop_path_rate', 'x2d_scale', 'out_dim', 'unknown']


@FUZZ
@given(data=st.data(), name=st.sampled_from(['d2', 'mix', 'd2-old', 'mix-old']))
def test_random_configs(folders, data, name):
    "config.json: a random document, or the real one with random values, missing fields or deep nesting."
    d = copy_of(folders, name)
    meta = json.loads((d/'config.json').read_text())
    how = data.draw(st.sampled_from(['document', 'values', 'missing', 'nesting', 'top']))
    if how == 'document': text = json.dumps(data.draw(JSON))
    elif how == 'values':
        fields = D2_FIELDS if name.startswith('d2') else MIX_FIELDS
        for k in data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4)): meta['config'][k] = data.draw(JSON)
        text = json.dumps(meta)
    elif how == 'missing':
        for k in data.draw(st.lists(st.sampled_from(sorted(meta['config'])), min_size=1, max_size=4)): meta['config'].pop(k, None)
        text = json.dumps(meta)
    elif how == 'nesting':
        n = data.draw(st.integers(1, 100_000))
        text = json.dumps({**meta, 'extra': 0}).replace('"extra": 0', '"extra": ' + '[' * n + ']' * n)
    else:
        for k in data.draw(st.lists(st.sampled_from(['format', 'class', 'config', 'extra', 'module']), min_size=1, max_size=3)): meta[k] = data.draw(JSON)
        text = json.dumps(meta)
    (d/'config.json').write_text(text)
    only_documented(load_model, d)
    only_documented(read_checkpoint_config, d)
    if name.startswith('d2'): only_documented(load_checkpoint, d)


TENSORS = st.builds(lambda shape, dtype, fill: torch.full(shape, fill).to(dtype),
                    st.lists(st.integers(0, 4), max_size=3).map(tuple),
                    st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.bool, torch.uint8]),
                    st.sampled_from([0., 1., -3., float('nan'), float('inf')]))
OBJECTS = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6) | TENSORS,
                       lambda c: st.lists(c, max_size=3) | st.tuples(c, c)
                       | st.dictionaries(st.text(max_size=12) | st.integers(), c, max_size=4), max_leaves=10)


@FUZZ
@given(obj=OBJECTS)
def test_random_torch_objects(obj):
    "Anything `torch.save` can write (of what weights_only admits), as a file and in memory."
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp)/'model.pth'
        torch.save(obj, f)
        for x in (f, str(f), {'model_pos': obj}):
            only_documented(read_reference_state_dict, x)
            only_documented(load_mixste_checkpoint, x)
        if isinstance(obj, dict):
            only_documented(read_reference_state_dict, obj)
            only_documented(load_mixste_checkpoint, obj)


@FUZZ
@given(data=st.data())
def test_damaged_mixste_state_dicts(folders, data):
    "The MixSTE layout with keys dropped, added or renamed, and tensors reshaped; and its .pt file's bytes damaged."
    sd = dict(torch.load(folders/'mixste.pt', weights_only=True)['model_pos'])
    keys = sorted(sd)
    for _ in range(data.draw(st.integers(1, 5))):
        how = data.draw(st.sampled_from(['drop', 'reshape', 'add', 'rename', 'nan']))
        k = data.draw(st.sampled_from(keys))
        if how == 'drop': sd.pop(k, None)
        elif how == 'reshape': sd[k] = torch.zeros(data.draw(st.lists(st.integers(0, 12), max_size=4)))
        elif how == 'add': sd[data.draw(st.sampled_from(['STEblocks', 'TTEblocks', 'head', 'x'])) + '.' + data.draw(st.text(max_size=6)) + '.w'] = torch.zeros(2)
        elif how == 'rename' and k in sd: sd[data.draw(st.text(max_size=30))] = sd.pop(k)
        elif k in sd and sd[k].numel(): sd[k] = sd[k].clone().view(-1).index_fill_(0, torch.tensor([0]), float('nan')).view(sd[k].shape)
    only_documented(load_mixste_checkpoint, sd)
    only_documented(load_mixste_checkpoint, {'model_pos': sd}, num_heads=data.draw(st.integers(-2, 9)))
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp)/'m.pt'
        f.write_bytes(mutate((folders/'mixste.pt').read_bytes(), data.draw))
        only_documented(load_mixste_checkpoint, f)
        only_documented(read_reference_state_dict, f)


def test_fuzz_is_bounded():
    "The examples per test (what CI runs), visible in the report."
    assert N >= 1
