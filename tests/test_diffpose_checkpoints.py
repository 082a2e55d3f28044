"""Full-size files in the layout of the authors' released DiffPose checkpoints load into diffhpe.diffpose with every key."""
import json, math
from pathlib import Path

import numpy as np
import pytest
import torch

from diffhpe.core import shared_dir
from diffhpe.diffpose import (GCNpose, GCNdiff, MIXSTE_243, load_diffpose_reference, load_reference_gcn,
                              load_reference_mixste, reference_state_dict)
from diffhpe.graph import n_params
from diffhpe.mixste import MixSTE

torch.set_num_threads(1)
SHARED = shared_dir()
pytestmark = pytest.mark.skipif(SHARED is None, reason='shared/reference (the checkpoint layout) is not available')


def _layout():
    formats = json.loads((SHARED/'reference/diffpose-checkpoint-layout.json').read_text())['formats']
    return {name.split(' ')[0]: f for name, f in formats.items()}


def _random(keys, seed):
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(tuple(s), generator=g) * 0.02 for k, s in keys.items()}
    # a learned graph A_hat has positive column sums (it starts at the identity); random signs would make its normalisation NaN
    return {k: (torch.eye(17) + v.abs() if k.endswith('A_hat') else v) for k, v in sd.items()}


def _adam(sd):
    ps = [torch.nn.Parameter(v.clone()) for v in list(sd.values())[:2]]
    opt = torch.optim.Adam(ps, lr=1e-3)
    sum((p ** 2).sum() for p in ps).backward()
    opt.step()
    return opt.state_dict()


def _check_loaded(net, sd):
    own = net.state_dict()
    assert sorted(own) == sorted(k[len('module.'):] for k in sd)  # every key mapped, none left over
    for k, v in sd.items(): assert torch.equal(own[k[len('module.'):]], v), k


@pytest.mark.parametrize('file,kind,cls', [('gcn_xyz_cpn.pth', 'gcnpose', GCNpose), ('diffpose_uvxyz_cpn.pth', 'gcndiff', GCNdiff),
                                           ('diffpose_video_uvxyz_cpn.pth', 'gcndiff', GCNdiff)])
def test_gcn_files(tmp_path, file, kind, cls):
    f = _layout()[file]
    assert n_params(cls()) == f['n_params'] == sum(math.prod(s) for s in f['keys'].values())
    sd = _random(f['keys'], 0)
    ema = {k[len('module.'):]: v for k, v in sd.items()}
    torch.save([sd, _adam(sd), 80, 19520, ema] if kind == 'gcndiff' else [sd], tmp_path/file)
    _check_loaded(load_reference_gcn(tmp_path/file, kind), sd)


@pytest.fixture(scope='module')
def mixste_file(tmp_path_factory):
    "A MixSTE-243 file as MixSTE's training script writes it (a numpy RandomState inside), and its weights."
    sd = _random(_layout()['mixste_cpn_243f.bin']['keys'], 1)
    p = tmp_path_factory.mktemp('mixste')/'mixste_cpn_243f.bin'
    torch.save({'epoch': 120, 'lr': 1e-5, 'random_state': np.random.RandomState(7), 'optimizer': _adam(sd), 'model_pos': sd}, p)
    return p, sd


def test_mixste_243_file(mixste_file):
    f = _layout()['mixste_cpn_243f.bin']
    assert sum(p.numel() for p in MixSTE(**MIXSTE_243).parameters()) == f['n_params'] == 33783811
    path, sd = mixste_file
    with pytest.raises(Exception): torch.load(path, weights_only=True)  # the plain safe load refuses the RNG state
    _check_loaded(load_reference_mixste(path), sd)


def test_video_model_end_to_end(tmp_path, mixste_file):
    sd_d = _random(_layout()['diffpose_video_uvxyz_cpn.pth']['keys'], 2)
    torch.save([sd_d, {}, 1, 1, {}], tmp_path/'d.pth')
    model = load_diffpose_reference(tmp_path/'d.pth', mixste_file[0], 'video-cpn')
    _check_loaded(model.denoiser, sd_d); _check_loaded(model.mixste, mixste_file[1])
    x = torch.randn(1, 243, 17, 2, generator=torch.Generator().manual_seed(0)) * 0.2
    out = model.predict(x)
    assert out.shape == (1, 243, 17, 3) and torch.isfinite(out).all() and out[..., 0, :].abs().max() == 0
    assert model.steps_for() == [0]  # the video CPN setting: one denoiser call at t = 0


def test_misshaped_and_nonfinite(tmp_path):
    sd = _random(_layout()['diffpose_uvxyz_cpn.pth']['keys'], 4)
    k = 'module.gconv_output.weight'
    torch.save([{**sd, k: torch.zeros(3, 1, 96, 3)}], tmp_path/'a.pth')
    with pytest.raises(ValueError, match=r'gconv_output.weight: \(3, 1, 96, 3\) instead of \(3, 1, 96, 5\)'): load_reference_gcn(tmp_path/'a.pth')
    torch.save([{**sd, k: sd[k] * float('inf')}], tmp_path/'b.pth')
    with pytest.raises(ValueError, match='NaN or infinite'): reference_state_dict(tmp_path/'b.pth', 'gcndiff')
