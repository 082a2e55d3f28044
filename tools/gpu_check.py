#!/usr/bin/env python
"""The GPU check of diffhpe: one run of about eight minutes on one CUDA GPU that exercises every GPU path.

    bash tools/gpu_check.sh                # on a CUDA machine; results in $OUT (default ./gpu-check)
    bash tools/gpu_check.sh --dry-run      # the same steps on the CPU with tiny budgets, in a minute (the tests run it)

Steps, each guarded (a failing step is reported and the next one still runs):
1. the device, torch and CUDA versions;
2. the tests on the GPU: tests/test_cuda.py (the CUDA-only checks) and, when nbdev is installed, every notebook
   (device 'auto' picks the GPU), within a time limit;
3. `diffhpe.bench.bench` at the paper's configuration (C=64, 16 blocks, T=50, H=5) for L = 27 and 243: DDPM-50 beside
   the reference's way, the DDIM settings, training throughput in float32 and under bf16 autocast;
4. the paper-size MixSTE (L=27, C=64, 8 layers), then DiffHPE-Wrapper on it, and DiffHPE-2D, trained on the embedded
   benchmark for fixed minutes each (`GPU_RECIPE`), then scored with the standard protocol (the test split, gt 2D,
   every frame once, H=5, the default sampler) beside the shipped CPU models scored the same way;
5. a table, printed last. Everything goes to OUT: gpu-check.json (all figures), bench-gpu.json, tests.log and one
   <model>.tar per trained model (best/ weights and config, log, recipe, summary): at most 8 files, each under 16 MiB.
   The runs themselves stay in OUT-runs (or --runs).
"""
from __future__ import annotations

import argparse, json, os, platform, re, subprocess, sys, tarfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))

MODELS = ('mixste', 'diffhpe-wrapper', 'diffhpe-2d')  # the Wrapper needs the MixSTE first
# A minutes-long budget at the paper's sizes: the CPU presets' schedule (warm-up, cosine over the time budget, EMA,
# selection on the validation MPJPE probe) with the paper's learning rates for the diffusion models. MixSTE's paper
# rate (4e-5 at batch 1024, for 500 epochs) does not move in minutes: 5e-4 at batch 256.
GPU_RECIPE = dict(warmup_steps=100, lr_schedule='cosine', min_lr=1e-5, grad_clip=1.0, ema_decay=0.99, validate_every=250,
                  validate_unit='steps', val_max_windows=1024, select_on='val_mpjpe', checkpoint_every=500, num_workers=0,
                  snapshot_minutes=None)
GPU_MODEL_RECIPE = {'mixste': dict(batch_size=256, lr=5e-4), 'diffhpe-wrapper': {}, 'diffhpe-2d': {}}
MAX_FILE = 16 * 2 ** 20  # what one returned file may weigh


def _say(*a): print(*a, flush=True)


def versions()->dict:
    "Python, torch, CUDA and the device."
    import torch
    v = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        v |= dict(device=p.name, device_memory_gib=round(p.total_memory / 2 ** 30, 1), capability=f'{p.major}.{p.minor}',
                  bf16=torch.cuda.is_bf16_supported(), cudnn=torch.backends.cudnn.version())
    return v


def run_tests(out:Path, minutes:float, dry:bool)->dict:
    "tests/test_cuda.py, then every notebook when nbdev is there; pytest's summary line and exit code."
    files = ['tests/test_cuda.py']
    try:
        import nbdev, execnb  # noqa: F401  (the notebooks' runner)
        if not dry: files.append('tests/test_notebooks.py')
    except ImportError: _say('nbdev/execnb are not installed: the notebooks are not run (pip install -e ".[dev]")')
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *files]
    log = out/'tests.log'
    t0 = time.time()
    try:
        r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60 * minutes)
        text, rc = r.stdout, r.returncode
    except subprocess.TimeoutExpired as e:
        text, rc = (e.stdout or b'').decode() if isinstance(e.stdout, bytes) else (e.stdout or ''), 'timeout'
        text += f'\n[stopped after the {minutes} min limit]\n'
    log.write_text(text)
    last = [line for line in text.splitlines() if re.search(r'\b\d+ (passed|failed|skipped|errors?)\b.* in [\d.]+s', line)]
    return dict(files=files, rc=rc, summary=last[-1] if last else None, seconds=round(time.time() - t0, 1))


def run_bench(out:Path, device:str, dry:bool)->dict:
    "The speed record at the paper's configuration, written to bench-gpu.json."
    from diffhpe.bench import bench
    kw = (dict(seq_lens=(9,), batch=2, train_batches=(2,), repeats=1, sample_repeats=1, ddim_steps=(1, 5),
               model_args=dict(channels=8, n_blocks=1), mixste_args=dict(embed_dim=8, depth=1, num_heads=2),
               diffpose_args=dict(hid_dim=8, n_layers=1, n_heads=2)) if dry else
          dict(seq_lens=(27, 243), train_batches=(4, 32, 200), call_batches=(80, 320), repeats=5, sample_repeats=3))
    rep = bench(device=device, amp=True, log=_say, **kw)
    rep.save(out/'bench-gpu.json')
    _say(rep.table())
    return dict(file='bench-gpu.json', rows=len(rep.rows))


def _pick(rows, model, L, measure, batch=None):
    for r in rows:
        if r['model'] == model and r['L'] == L and r['measure'] == measure and (batch is None or r['batch'] == batch): return r
    return None


def bench_summary(gpu_rows:list, cpu_rows:list)->list:
    "Per model and L: train windows/s (float32, bf16) on the GPU beside the CPU record, and DDPM-50 over the reference way."
    out = []
    for name in ('diffhpe-2d', 'diffhpe-wrapper'):
        for L in sorted({r['L'] for r in gpu_rows}):
            g32 = _pick(gpu_rows, name, L, 'train step', 32) or _pick(gpu_rows, name, L, 'train step')
            if g32 is None: continue
            g16 = _pick(gpu_rows, name, L, 'train step, AMP bf16', g32['batch'])
            c32 = _pick(cpu_rows, name, L, 'train step', g32['batch'])
            ddpm, ref = _pick(gpu_rows, name, L, 'sample DDPM-50'), _pick(gpu_rows, name, L, 'sample DDPM-50, reference way')
            out.append({'model': name, 'L': L, 'train batch': g32['batch'], 'GPU windows/s': g32['windows/s'],
                        'GPU bf16 windows/s': g16['windows/s'] if g16 else None, 'CPU windows/s': c32['windows/s'] if c32 else None,
                        'DDPM-50 s': ddpm['seconds'] if ddpm else None, 'ref way s': ref['seconds'] if ref else None,
                        'x ref way': ddpm.get('x ref way') if ddpm else None})
    return out


def train_and_score(out:Path, runs:Path, device:str, minutes:float, dry:bool, every:int)->list:
    "Train the three models for `minutes` each into `runs`, score each beside the shipped CPU model; one row per model."
    import torch
    from diffhpe.recipes import run_training, run_evaluation, load_splits
    from diffhpe.wrapper import load_model, pretrained_dir
    splits = load_splits('cmu')
    rows = []
    for name in MODELS:
        t0 = time.time()
        run = runs/name
        train_args = dict(max_steps=4, validate_every=2, val_max_windows=16, batch_size=8, checkpoint_every=2) if dry else \
                     dict(GPU_RECIPE, **GPU_MODEL_RECIPE[name])
        try:
            s = run_training(name, run, 'cmu', 'cpu' if dry else 'h36m', max_minutes=minutes, splits=splits,
                             conditioner=(runs/'mixste') if name == 'diffhpe-wrapper' else None,
                             train_args=train_args | dict(device=device), log=_say)
            model = load_model(run).to(device)
            scores = {}
            for label, m in (('trained here', model), ('shipped (CPU)', load_model(pretrained_dir(name)).to(device))):
                r = run_evaluation(m, split='test', every=every, splits=splits)
                scores[label] = {k: r.overall[k] for k in ('MPJPE', 'P-MPJPE', 'symmetry', 'seg std')} | dict(windows=r.settings['windows'])
            shipped = json.loads((pretrained_dir(name)/'summary.json').read_text())
            rows.append(dict(model=name, device=s['device'], minutes=minutes, steps=s['steps'], seconds=s['seconds'],
                             **{'steps/s': s['steps'] / max(s['seconds'], 1e-9), 'CPU steps/s (shipped run)': shipped['steps'] / shipped['seconds'],
                                'MPJPE': scores['trained here']['MPJPE'], 'shipped MPJPE': scores['shipped (CPU)']['MPJPE']},
                             scores=scores, parameters=sum(p.numel() for p in model.parameters())))
            pack(run, out/f'{name}.tar')
        except Exception as e:  # keep going: the next model and the table still come back
            traceback.print_exc()
            rows.append(dict(model=name, error=f'{type(e).__name__}: {e}'))
        _say(f'{name}: {time.time() - t0:.0f} s')
        if device.startswith('cuda'): torch.cuda.empty_cache()
    return rows


def pack(run:Path, dest:Path):
    "best/ (weights, config), log, recipe and summary of one run in one tar, refused past the size a returned file may have."
    with tarfile.open(dest, 'w') as tar:
        for rel in ('best/model.safetensors', 'best/config.json', 'log.csv', 'recipe.json', 'summary.json'):
            if (run/rel).is_file(): tar.add(run/rel, arcname=f'{run.name}/{rel}')
    if dest.stat().st_size > MAX_FILE: raise ValueError(f'{dest} is {dest.stat().st_size / 2 ** 20:.1f} MiB, over the 16 MiB a file may have.')


def table(rows:list, cols:list)->str:
    "Plain text, one line per row."
    def f(v): return '' if v is None else f'{v:.3g}' if isinstance(v, float) else str(v)
    cells = [[f(r.get(c)) for c in cols] for r in rows]
    w = [max([len(c)] + [len(x[i]) for x in cells]) for i, c in enumerate(cols)]
    return '\n'.join('  '.join(v.rjust(w[i]) for i, v in enumerate(line)) for line in [cols] + cells)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=os.environ.get('OUT') or 'gpu-check', help='output folder (default: $OUT, else ./gpu-check)')
    p.add_argument('--dry-run', action='store_true', help='the CPU with tiny budgets: checks the script, its figures mean nothing')
    p.add_argument('--train-minutes', type=float, default=1.3, help='training budget of each model (default: %(default)s)')
    p.add_argument('--test-minutes', type=float, default=2.0, help='time limit of the tests (default: %(default)s)')
    p.add_argument('--runs', default=None, help='where the training runs go, outside OUT (default: OUT-runs; must not exist)')
    p.add_argument('--every', type=int, default=None, help='score every k-th test sequence (default: 1; 64 in a dry run)')
    p.add_argument('--skip', nargs='*', default=[], choices=['tests', 'bench', 'train'], help='steps to leave out')
    a = p.parse_args(argv)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    runs = Path(a.runs) if a.runs else out.with_name(out.name + '-runs')  # outside OUT: only the packed runs come back
    t0 = time.time()
    import torch
    device = 'cpu' if a.dry_run else 'cuda'
    if not a.dry_run and not torch.cuda.is_available():
        sys.exit('gpu_check: no CUDA device is visible to torch (a CPU build, or no GPU): run with --dry-run to check the script on a CPU.')
    if a.dry_run: torch.set_num_threads(1)
    every = a.every or (64 if a.dry_run else 1)
    record = dict(versions=versions(), dry_run=a.dry_run, started=time.strftime('%Y-%m-%d %H:%M:%S'), steps={})
    _say('== 1. versions\n' + json.dumps(record['versions'], indent=1))
    def step(key, title, fn):
        _say(f'== {title}  [{time.time() - t0:.0f} s]')
        try: record['steps'][key] = fn()
        except Exception as e:
            traceback.print_exc(); record['steps'][key] = dict(error=f'{type(e).__name__}: {e}')
        (out/'gpu-check.json').write_text(json.dumps(record, indent=1, default=str))
    if 'tests' not in a.skip: step('tests', '2. tests on the device', lambda: run_tests(out, a.test_minutes, a.dry_run))
    if 'bench' not in a.skip: step('bench', '3. bench at the paper configuration', lambda: run_bench(out, device, a.dry_run))
    if 'train' not in a.skip: step('train', f'4. training, {a.train_minutes} min per model, and scores',
                                   lambda: train_and_score(out, runs, device, a.train_minutes, a.dry_run, every))
    res = ROOT/'diffhpe/assets/results'  # the CPU records (one thread) the GPU is compared with
    gpu_rows = json.loads((out/'bench-gpu.json').read_text())['rows'] if (out/'bench-gpu.json').is_file() else []
    cpu_rows = [r for f in ('bench-cpu.json', 'bench-cpu-243.json') if (res/f).is_file() for r in json.loads((res/f).read_text())['rows']]
    record['bench_summary'] = bench_summary(gpu_rows, cpu_rows)
    record['seconds'] = round(time.time() - t0, 1)
    (out/'gpu-check.json').write_text(json.dumps(record, indent=1, default=str))
    _say(f'== 5. summary  [{record["seconds"]:.0f} s]' + ('  (DRY RUN: the figures mean nothing)' if a.dry_run else ''))
    t = record['steps'].get('tests', {})
    if t: _say(f"tests: {t.get('summary') or t.get('error')} (exit {t.get('rc')})")
    if record['bench_summary']:
        _say('\nspeed (windows/s of a train step at its batch; seconds to sample the bench batch, 4 windows, x H=5)\n' + table(record['bench_summary'], list(record['bench_summary'][0])))
    tr = record['steps'].get('train')
    if isinstance(tr, list):
        _say('\ntrained here vs shipped CPU models, embedded benchmark test split (mm)\n' +
             table(tr, ['model', 'device', 'steps', 'steps/s', 'CPU steps/s (shipped run)', 'MPJPE', 'shipped MPJPE', 'error']))
    elif tr: _say(f'training: {tr.get("error")}')
    files = sorted(f.name for f in out.iterdir() if f.is_file())
    _say(f'\nwritten to {out}: {", ".join(files)}')


if __name__ == '__main__':
    main()
