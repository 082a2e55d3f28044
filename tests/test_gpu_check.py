"""`tools/gpu_check.sh --dry-run`: the GPU check's every step on the CPU with tiny budgets, so the script cannot rot.

Its figures mean nothing; what is checked is that each step runs, that what comes back is what a GPU run returns
(at most 8 files, each under 16 MiB, the runs packed), and that the recorded scores and ratios are what an independent
recomputation gives.
"""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu-check')/'out'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    p = subprocess.run(['bash', str(ROOT/'tools'/'gpu_check.sh'), '--dry-run', '--out', str(out), '--every', '128'],
                       capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out, p.stdout


def test_every_step_ran(dry_run):
    out, stdout = dry_run
    rec = json.loads((out/'gpu-check.json').read_text())
    assert rec['dry_run'] is True and rec['versions']['torch']
    assert not [k for k, v in rec['steps'].items() if isinstance(v, dict) and 'error' in v], rec['steps']
    assert 'passed' in (rec['steps']['tests']['summary'] or '') or 'skipped' in (rec['steps']['tests']['summary'] or '')
    assert [r['model'] for r in rec['steps']['train']] == ['mixste', 'diffhpe-wrapper', 'diffhpe-2d']
    assert all('error' not in r and r['steps'] == 4 for r in rec['steps']['train'])
    assert stdout.rstrip().splitlines()[-1].startswith('written to')  # the table, then the file list, last
    assert 'trained here vs shipped CPU models' in stdout


def test_what_comes_back(dry_run):
    out, _ = dry_run
    files = sorted(f for f in out.rglob('*') if f.is_file())
    assert len(files) <= 8 and all(f.parent == out for f in files), files
    assert all(f.stat().st_size < 16 * 2 ** 20 for f in files)
    assert {f.name for f in files} >= {'gpu-check.json', 'bench-gpu.json', 'tests.log', 'mixste.tar', 'diffhpe-2d.tar', 'diffhpe-wrapper.tar'}
    assert (out.with_name(out.name + '-runs')/'mixste'/'last').is_dir()  # the runs stay beside OUT


def test_scores_recompute(dry_run, tmp_path):
    "The MPJPE recorded for a packed model is what scoring the unpacked weights again gives."
    out, _ = dry_run
    rec = json.loads((out/'gpu-check.json').read_text())
    with tarfile.open(out/'diffhpe-2d.tar') as t: t.extractall(tmp_path, filter='data')
    from diffhpe.recipes import run_evaluation
    r = run_evaluation(tmp_path/'diffhpe-2d', every=128)
    row = next(x for x in rec['steps']['train'] if x['model'] == 'diffhpe-2d')
    assert abs(r.overall['MPJPE'] - row['MPJPE']) < 1e-6 * row['MPJPE']


def test_bench_summary_consistent(dry_run):
    out, _ = dry_run
    rec = json.loads((out/'gpu-check.json').read_text())
    rows = json.loads((out/'bench-gpu.json').read_text())['rows']
    for s in rec['bench_summary']:
        ddpm = next(r for r in rows if r['model'] == s['model'] and r['L'] == s['L'] and r['measure'] == 'sample DDPM-50')
        ref = next(r for r in rows if r['model'] == s['model'] and r['L'] == s['L'] and r['measure'] == 'sample DDPM-50, reference way')
        assert abs(s['x ref way'] - ref['seconds'] / ddpm['seconds']) < 1e-9 * s['x ref way']
        assert s['GPU bf16 windows/s'] is not None
