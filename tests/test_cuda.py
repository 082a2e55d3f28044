"""The GPU paths, checked on a CUDA device (all skipped without one; `tools/gpu_check.sh` runs them on a GPU).

Each test compares the GPU with the CPU on the same inputs: the noise comes from a seeded CPU generator on both
(`diffhpe.diffusion.draw_noise`), so the two differ only by float arithmetic.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')

from diffhpe.diffusion import draw_noise, draw_steps  # noqa: E402
from diffhpe.models import DiffHPE2D, DiffHPEConfig  # noqa: E402
from diffhpe.wrapper import load_model, pretrained_dir  # noqa: E402


def _windows(n=4, L=27, seed=0):
    from diffhpe.benchmark import load_benchmark
    from diffhpe.windows import EvalWindows
    w = EvalWindows(load_benchmark('test')[:2], L)
    return torch.stack([torch.as_tensor(w[i]['x_2d']) for i in range(n)]), w


def test_cpu_generator_drives_cuda():
    g = lambda: torch.Generator().manual_seed(3)
    like = torch.zeros(1, device='cuda')
    assert torch.equal(draw_noise((5, 7), like, g()).cpu(), draw_noise((5, 7), like.cpu(), g()))
    assert torch.equal(draw_steps(50, 9, 'cuda', g()).cpu(), draw_steps(50, 9, 'cpu', g()))


@pytest.mark.parametrize('name', ['diffhpe-2d', 'diffhpe-wrapper'])
@pytest.mark.parametrize('sampler,steps,eta', [('ddpm', None, 0.), ('ddim', 5, 1.)])
def test_sampling_matches_cpu(name, sampler, steps, eta):
    x_2d, _ = _windows()
    cpu = load_model(pretrained_dir(name))
    gpu = load_model(pretrained_dir(name)).cuda()
    kw = dict(n_hypotheses=5, sampler=sampler) | (dict(steps=steps, eta=eta) if sampler == 'ddim' else {})
    a = cpu.sample(x_2d, generator=torch.Generator().manual_seed(0), **kw)
    b = gpu.sample(x_2d.cuda(), generator=torch.Generator().manual_seed(0), **kw).cpu()
    assert b.shape == a.shape == (4, 5, 27, 17, 3)
    assert (a - b).abs().max() < 2e-3, f'{name} {sampler}: CPU and GPU hypotheses differ by {(a - b).abs().max():.2e} m'


def test_evaluation_matches_cpu():
    from diffhpe.recipes import run_evaluation, load_splits
    splits = load_splits('cmu')
    cpu = run_evaluation('diffhpe-wrapper', every=64, splits=splits)
    gpu = run_evaluation(load_model(pretrained_dir('diffhpe-wrapper')).cuda(), every=64, splits=splits)
    for k in ('MPJPE', 'P-MPJPE', 'symmetry', 'seg std'):
        assert abs(cpu.overall[k] - gpu.overall[k]) < 0.5, (k, cpu.overall[k], gpu.overall[k])


def test_lift_on_cuda():
    import diffhpe
    from diffhpe.benchmark import load_benchmark
    clip = load_benchmark('test')[200]
    args = (clip.x_2d_pixels[:80],)
    kw = dict(image_size=(clip.camera.res_w, clip.camera.res_h), keypoint_format='h36m')
    a = diffhpe.lift(*args, **kw)
    b = diffhpe.lift(*args, device='cuda', **kw)
    assert np.isfinite(b.poses).all()
    assert np.abs(a.poses - b.poses).max() < 5., np.abs(a.poses - b.poses).max()  # mm


@pytest.mark.parametrize('name', ['mixste', 'diffhpe-2d'])
def test_training_amp_on_cuda(tmp_path, name):
    "A few steps with float16 autocast + GradScaler on the GPU; the checkpoint computes the same on the CPU."
    from diffhpe.recipes import run_training
    s = run_training(name, tmp_path/'run', train_args=dict(max_steps=6, validate_every=3, val_max_windows=32, batch_size=16,
                                                           checkpoint_every=3, device='cuda', amp=True), log=None)
    assert s['steps'] == 6 and s['device'].startswith('cuda')
    log = (tmp_path/'run'/'log.csv').read_text().splitlines()
    assert len(log) >= 3 and 'nan' not in ''.join(log[1:]).lower()
    m_cpu = load_model(tmp_path/'run').eval()
    m_gpu = load_model(tmp_path/'run').cuda().eval()
    x_2d, _ = _windows()
    with torch.inference_mode():
        if name == 'mixste': a, b = m_cpu(x_2d), m_gpu(x_2d.cuda()).cpu()
        else: a, b = (m.sample(x.to(m.device), n_hypotheses=2, sampler='ddim', steps=2, generator=torch.Generator().manual_seed(0)).cpu()
                      for m, x in ((m_cpu, x_2d), (m_gpu, x_2d)))
    assert (a - b).abs().max() < 2e-3


def test_bench_on_cuda(tmp_path):
    from diffhpe.bench import bench
    rep = bench(seq_lens=(27,), train_batches=(4,), repeats=2, sample_repeats=1, ddim_steps=(5,), device='cuda', amp=True, log=None)
    by = {(r['model'], r['measure']): r for r in rep.rows}
    assert rep.info['device'].startswith('cuda') and rep.info['memory'] == 'CUDA max_memory_allocated'
    for m in ('diffhpe-2d', 'diffhpe-wrapper'):
        assert by[(m, 'sample DDPM-50')]['calls'] == 50 and by[(m, 'sample DDPM-50, reference way')]['calls'] == 250
        assert by[(m, 'train step, AMP bf16')]['seconds'] > 0 and by[(m, 'sample DDPM-50')]['peak MB'] > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='NCCL between processes needs two GPUs')
def test_ddp_nccl(tmp_path):
    "Two processes, one GPU each, NCCL: the run finishes and only rank 0 writes."
    script = tmp_path/'run.py'
    script.write_text(textwrap.dedent('''
        import sys
        from diffhpe.training import init_distributed
        from diffhpe.recipes import run_training
        rank, world = init_distributed()
        assert world == 2
        run_training('diffhpe-2d', sys.argv[1], train_args=dict(max_steps=4, validate_every=2, val_max_windows=16, batch_size=16), log=None)
    '''))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), str(tmp_path/'ddp')]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    s = json.loads((tmp_path/'ddp'/'summary.json').read_text())
    assert s['world_size'] == 2 and s['steps'] == 4
