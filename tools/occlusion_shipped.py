"""The shipped models under the test occlusion patterns (the first row of the paper's robustness study), into one JSON.

    python tools/occlusion_shipped.py --out diffhpe/assets/results/occlusion.json [--every 16]

Every model of `diffhpe.wrapper.PRETRAINED` that is installed is scored by `run_evaluation` on the same test
sequences, with no occlusion and under each pattern of `diffhpe.windows.ALL_PATTERNS` (seeded: the same hidden
keypoints for every model), each with its own sampler settings (`default_sampling`), H = 5 for the stochastic
models (1 for MixSTE and for DiffPose's released mode, whose hypotheses are copies). One torch thread.
"""
import argparse, json, time
from pathlib import Path

import torch

from diffhpe.models import sampling_for
from diffhpe.recipes import run_evaluation, load_splits
from diffhpe.windows import ALL_PATTERNS
from diffhpe.wrapper import PRETRAINED, pretrained_dir, load_model


def hypotheses_for(model, H:int)->int:
    "H for a model: 1 where the hypotheses cannot differ."
    if not sampling_for(model): return 1
    if hasattr(model, 'steps_for') and model.config.mode == 'released': return 1  # DiffPose's released mode: copies (by capability)
    return H


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True)
    p.add_argument('--every', type=int, default=16)
    p.add_argument('--hypotheses', type=int, default=5)
    p.add_argument('--models', nargs='*', default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    splits = load_splits('cmu', 'gt')
    rows = []
    for name in a.models or PRETRAINED:
        if not (pretrained_dir(name)/'config.json').is_file(): print(f'{name}: not installed, skipped'); continue
        model = load_model(name)
        H = hypotheses_for(model, a.hypotheses)
        for pattern in ('none',) + ALL_PATTERNS:
            t0 = time.perf_counter()
            r = run_evaluation(model, splits=splits, every=a.every, occlusion=pattern, n_hypotheses=H, seed=0)
            o = r.overall
            rows.append({'model': name, 'test occlusion': pattern, 'MPJPE': o['MPJPE'], 'P-MPJPE': o['P-MPJPE'], 'symmetry': o['symmetry'],
                         'seg std': o['seg std'], 'H': H, 'sampler': {k: v for k, v in sampling_for(model).items()} or None,
                         'seconds': time.perf_counter() - t0, 'windows': r.settings['windows']})
            print(json.dumps(rows[-1]), flush=True)
    n_seq = len(splits['test'][::a.every])
    out = {'occlusion': {'protocol': f'test subjects, every {a.every}th sequence ({n_seq} sequences, {rows[0]["windows"]} windows), gt 2D; each model with its own '
                                     f'sampler settings, H={a.hypotheses} for the stochastic models (1 for MixSTE and DiffPose\'s released mode), mean; '
                                     'the shipped models, trained without occlusion; occlusions seeded (seed 0), the same for every model',
                         'command': f'python tools/occlusion_shipped.py --every {a.every} --hypotheses {a.hypotheses}',
                         'date': time.strftime('%Y-%m-%d'), 'rows': rows}}
    Path(a.out).write_text(json.dumps(out, indent=1))
    print('wrote', a.out)


if __name__ == '__main__':
    main()
