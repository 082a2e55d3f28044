"""The lift model measured as `diffhpe.lift` uses it: COCO-17 against Human3.6M-17 input, and detected 2D under occlusion.

    python tools/wild_model.py --models RUN_OR_NAME ... --out diffhpe/assets/results/wild.json [--every 16]

For every model (a run folder, a checkpoint folder or a pretrained name):
1. the same test clips (every k-th sequence of `test`, `test-views` and `test-bodies`, exact 2D in pixels) lifted by `lift` twice:
   given as Human3.6M-17 keypoints, and given as COCO-17 keypoints (`h36m_to_coco`), from which `lift` derives the
   Hip, Spine, Thorax and Head as it does for a detector's output; MPJPE of each against the truth;
2. `run_evaluation` on detected 2D (SYNTHETIC detector noise), with no occlusion and under each test pattern of
   `diffhpe.windows.ALL_PATTERNS` (seeded: the same hidden keypoints for every model): MPJPE overall, at the hidden
   and at the visible keypoints (`evaluation.occlusion_errors`).
Each model uses its own sampler settings; H = 5 where the hypotheses can differ. One torch thread.
`--merge RECORD` keeps an earlier record's rows of the models this run does not score (a model's rows replaced in place;
`--keep-replaced-as TEXT` keeps the replaced ones as "MODEL (TEXT)").
"""
import argparse, json, time
from pathlib import Path

import numpy as np
import torch

from diffhpe.benchmark import VIEW_SPLITS, benchmark_splits, load_benchmark
from diffhpe.cmu import load_cmu_world
from diffhpe.lifting import lift
from diffhpe.metrics import mpjpe
from diffhpe.recipes import run_evaluation
from diffhpe.windows import ALL_PATTERNS, h36m_to_coco
from diffhpe.wrapper import load_model
from occlusion_shipped import add_merge_arguments, hypotheses_for, merged  # H where hypotheses can differ (1 for MixSTE and released DiffPose)


def format_errors(model, seqs, H, seed=0)->dict:
    "MPJPE (mm, frame-weighted) of `lift` on the clips `seqs`, given as Human3.6M-17 and as COCO-17 keypoints."
    err = {'h36m': [], 'coco': []}
    for q in seqs:
        px, size = q.x_2d_pixels, (q.camera.res_w, q.camera.res_h)
        for fmt, kp in (('h36m', px), ('coco', h36m_to_coco(px))):
            r = lift(kp, size, keypoint_format=fmt, model=model, n_hypotheses=H, seed=seed)
            err[fmt].append(mpjpe(r.poses / 1000, q.x_3d, reduction='none'))
    return {f'MPJPE {k}': float(np.concatenate(v).mean()) for k, v in err.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--models', nargs='+', required=True, help='run folders, checkpoint folders or pretrained names')
    p.add_argument('--labels', nargs='*', default=None, help='a label per model (default: the names given)')
    p.add_argument('--out', required=True)
    p.add_argument('--every', type=int, default=16)
    p.add_argument('--hypotheses', type=int, default=5)
    add_merge_arguments(p)
    a = p.parse_args()
    torch.set_num_threads(1)
    world = load_cmu_world()
    det = benchmark_splits('detected', path=world)
    clips = {'test': benchmark_splits('gt', path=world)['test'][::a.every],
             **{s: load_benchmark(s, 'gt', path=world)[::a.every] for s in VIEW_SPLITS}}
    rows, t0 = [], time.time()
    for name, label in zip(a.models, a.labels or a.models):
        model = load_model(name)
        H = hypotheses_for(model, a.hypotheses)
        for split, seqs in clips.items():
            t1 = time.perf_counter()
            rows.append(dict(model=label, measure='COCO-17 vs H36M-17 input (lift, gt 2D)', split=split, H=H, **format_errors(model, seqs, H),
                             frames=sum(q.n_frames for q in seqs), seconds=round(time.perf_counter() - t1, 1)))
            rows[-1]['COCO / H36M'] = rows[-1]['MPJPE coco'] / rows[-1]['MPJPE h36m']
            print(json.dumps(rows[-1]), flush=True)
        for pattern in ('none',) + ALL_PATTERNS:
            t1 = time.perf_counter()
            o = run_evaluation(model, keypoints='detected', splits=det, every=a.every, occlusion=pattern, n_hypotheses=H, seed=0).overall
            rows.append(dict(model=label, measure='detected 2D under occlusion (run_evaluation, test)', occlusion=pattern, H=H, MPJPE=o['MPJPE'],
                             **{k: o.get(k) for k in ('P-MPJPE', 'MPJPE hidden', 'MPJPE visible', 'hidden share')},
                             seconds=round(time.perf_counter() - t1, 1)))
            print(json.dumps(rows[-1]), flush=True)
    out = dict(description=f'Lift models as diffhpe.lift uses them, every {a.every}th sequence: COCO-17 vs Human3.6M-17 keypoints of the same clips '
                           f'(lift, overlapping windows), and detected 2D under the test occlusions (run_evaluation, cover mode, seed 0); '
                           f'each model with its own sampler settings, H={a.hypotheses} where hypotheses differ; 1 torch thread on a shared 2-core CPU.',
               command='python tools/wild_model.py ' + ' '.join(f'--{k} {" ".join(map(str, v)) if isinstance(v, list) else v}' for k, v in vars(a).items() if v is not None and k not in ('out', 'merge', 'keep_replaced_as')),
               date=time.strftime('%Y-%m-%d'), seconds=round(time.time() - t0), rows=rows)
    out = merged(a, out, lambda r: (r['model'], r.get('split'), r.get('occlusion')))
    Path(a.out).write_text(json.dumps(out, indent=1))
    print('wrote', a.out)


if __name__ == '__main__':
    main()
