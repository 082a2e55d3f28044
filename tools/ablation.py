"""What each training augmentation buys: DiffHPE-2D runs that differ only in their `--augment`, on one protocol.

    python tools/ablation.py --runs none=RUN bodies=RUN ... three=RUN --out diffhpe/assets/results/ablation.json [--every 8]

Every run is scored like a row of the side-by-side table (`tools/side_by_side.py`'s `score`): the test split with exact
and with detected 2D, and `test-views` with exact 2D, beside the linear lifter on the same windows. One torch thread.
"""
import argparse, json, time
from pathlib import Path

import torch

from diffhpe.baselines import LinearLifter
from diffhpe.benchmark import benchmark_splits, load_benchmark
from diffhpe.cmu import load_cmu_world
from diffhpe.lifting import FramewiseLifter
from diffhpe.recipes import read_recipe
from diffhpe.wrapper import load_model
from side_by_side import score


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--runs', nargs='+', required=True, metavar='LABEL=RUN', help='a label and a run folder per ablation row')
    p.add_argument('--out', required=True)
    p.add_argument('--every', type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(1)
    world = load_cmu_world()
    splits = {kp: benchmark_splits(kp, path=world) for kp in ('gt', 'detected')}
    views = dict(splits['gt'], **{'test-views': load_benchmark('test-views', 'gt', path=world)})
    rows, t0 = [], time.time()
    models = [('linear', None)] + [tuple(r.split('=', 1)) for r in a.runs]
    for label, run in models:
        recipe = {} if run is None else read_recipe(run)
        for kp, split, sp in (('gt', 'test', splits['gt']), ('gt', 'test-views', views), ('detected', 'test', splits['detected'])):
            m = FramewiseLifter(LinearLifter().fit(sp['train'])) if run is None else load_model(run)
            rows.append(dict(score(m, label, kp, split, sp, a.every, 5), augment=recipe.get('augment'), max_minutes=recipe.get('max_minutes')))
        if run is not None:
            s = json.loads((Path(run)/'summary.json').read_text())
            for r in rows[-3:]: r['train steps'] = s.get('step', s.get('steps'))
    steps = sorted({r['train steps'] for r in rows if 'train steps' in r})
    out = dict(description=f'DiffHPE-2D (cpu preset, seed 0) trained with no augmentation, one augmentation (probability 0.5) or the shipped '
                           f'three, for the same {"/".join(map(str, steps))} optimizer steps, 1 torch thread; scored on every {a.every}th '
                           f'sequence (run_evaluation, cover mode, the model\'s own DDIM sampling, H=5, seed 0).',
               command='python tools/ablation.py --runs ' + ' '.join(a.runs) + f' --every {a.every}',
               date=time.strftime('%Y-%m-%d'), seconds=round(time.time() - t0), rows=rows)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print('wrote', a.out)


if __name__ == '__main__':
    main()
