"""The side-by-side table of every method on the embedded benchmark: one protocol, every frame scored once.

    python tools/side_by_side.py --runs RUNS --out diffhpe/assets/results/side-by-side.json [--every 4]

RUNS holds the trained run folders mixste, diffhpe-2d, diffhpe-wrapper, diffpose (from `diffhpe train`), and
diffhpe-2d-wild, the default lift model (checkpoint folders work too: `--runs diffhpe/assets/models` scores the shipped
models). The DiffPose
video model (the frame model's denoiser refining the MixSTE's poses) and the keypoint-only mixture mode (the frame
model's networks, mixtures fitted on the training split) are made here from those runs and saved beside them.
Every model is scored by `run_evaluation` on the same test sequences, for exact (gt) and detected 2D, and on the
viewpoint-shifted split `test-views` and on `test-bodies` (the same through virtual cameras, each segment on another
body), both with gt 2D. One torch thread; seconds per 1,000 frames are the wall clock of each run.
`--merge RECORD` keeps the rows of an earlier record that this run does not score (the same split, 2D and model replaced);
the rows are written in table order (split, 2D source, model); `--keep-replaced-as TEXT` keeps the replaced rows as
"MODEL (TEXT)" (e.g. a model's rows before it was retrained).
`--extra LABEL=FOLDER` scores a candidate beside them (e.g. a run not shipped), its recipe recorded with its rows.
"""
import argparse, json, time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from diffhpe.baselines import LinearLifter
from diffhpe.benchmark import VIEW_SPLITS, benchmark_splits, load_benchmark
from diffhpe.cmu import load_cmu_world
from diffhpe.diffpose import DiffPose, detector_errors, cross_fitted_depth_residuals, save_diffpose
from diffhpe.lifting import FramewiseLifter
from diffhpe.models import sampling_for
from diffhpe.recipes import read_recipe, run_evaluation
from diffhpe.wrapper import load_model
from occlusion_shipped import add_merge_arguments, hypotheses_for, merged  # H where hypotheses can differ (1 for MixSTE and released DiffPose)


def fold_sequences(seqs, n_folds):
    "The training sequences relabelled by subject fold, for cross-fitting over `n_folds` groups of subjects."
    subjects = sorted({s.subject for s in seqs})
    fold = {s: f'fold{i % n_folds}' for i, s in enumerate(subjects)}
    return [replace(s, subject=fold[s.subject]) for s in seqs]


def train_gcnpose(frame, seqs, steps, seed, batch=256):
    "A fresh GCNpose of the frame model's architecture, trained on exact 2D of `seqs` (initial MPJPE loss), Adam 1e-3."
    torch.manual_seed(seed)
    m = DiffPose(replace(frame.config, seq_len=1, mode='released'))
    x2 = torch.from_numpy(np.concatenate([s.x_2d for s in seqs])).float()
    x3 = torch.from_numpy(np.concatenate([s.x_3d for s in seqs])).float()
    opt = torch.optim.Adam(m.pose_net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    m.train()
    for k in range(steps):
        i = torch.randint(0, len(x2), (batch,), generator=g)
        loss = m.initial_loss(x3[i][:, None], x2[i][:, None])
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.pose_net.parameters(), 1.0); opt.step()
    return m.eval()


def keypoint_gmm_model(frame, gt, sp, steps, n_folds=3, seed=0, max_frames=30000):
    "The frame model in the keypoint-only mode, its mixtures fitted on the training split of the 2D source `sp`."
    rng = np.random.default_rng(seed)
    err = detector_errors(sp['train'], gt['train'])
    # depth residuals of GCNpose, cross-fitted: lifters trained on exact 2D of the other folds, given the held-out fold's 2D of this source
    exact_folded = fold_sequences(gt['train'], n_folds)  # the source's train split lists the same videos in the same order (checked by detector_errors)
    folded = [replace(q, x_2d=s.x_2d) for q, s in zip(exact_folded, sp['train'])]  # the held-out fold is predicted from this source's 2D
    exact_by = {id(q): e.x_2d for q, e in zip(folded, exact_folded)}
    def fit(train_seqs): return train_gcnpose(frame, [replace(q, x_2d=exact_by[id(q)]) for q in train_seqs], steps, seed)
    def predict(m, x):
        with torch.no_grad(): return m.initial_pose(m.condition(torch.as_tensor(x)[None].float()))[0].numpy()
    res = cross_fitted_depth_residuals(folded, fit, predict)
    pick = rng.choice(len(err), min(max_frames, len(err)), replace=False)
    gm = frame.with_mode('keypoint-gmm')
    gm.fit_keypoint_gmm(err[pick], res[pick], seed=seed)
    return gm.eval()


def denoiser_calls(model, kw)->int:
    "Denoiser calls per window of one sampling run with the sampler keywords `kw` (0 for a supervised lifter)."
    if not kw: return 0
    if hasattr(model, 'steps_for'): return len(model.steps_for(kw['steps']))  # DiffPose: along its released steps
    return kw['steps'] if kw['sampler'] == 'ddim' else model.config.T


def score(model, label, kp, split, sp, every, H, seed=0):
    "One row of the table: run_evaluation's overall averages, hypotheses, calls per window, seconds per 1,000 frames."
    t0 = time.perf_counter()
    kw, n_h = sampling_for(model), hypotheses_for(model, H)
    r = run_evaluation(model, split=split, keypoints=kp, splits=sp, every=every, n_hypotheses=n_h, seed=seed)
    s = time.perf_counter() - t0
    o = r.overall
    calls = denoiser_calls(model, kw)
    row = dict(split=split, keypoints=kp, model=label, MPJPE=o['MPJPE'], **{'P-MPJPE': o['P-MPJPE']}, symmetry=o.get('symmetry'),
               **{'seg std': o.get('seg std')}, H=n_h, calls=calls, seconds=round(s, 1), windows=r.settings['windows'])
    row['frames'] = r.settings['frames']
    row['s/1000 frames'] = round(1000 * s / row['frames'], 2)
    print(json.dumps(row), flush=True)
    return row


def recipe_of(run)->dict:
    "How a run or checkpoint folder was trained (`read_recipe`): augmentation, occlusion, budget (empty when there is none)."
    r = read_recipe(run) if isinstance(run, Path) else {}
    return {'trained': {k: r.get(k) for k in ('augment', 'occlusion', 'max_minutes', 'model_args')}} if r else {}


def in_table_order(rows, labels)->list:
    "Rows sorted as the tables read: by split, then 2D source (gt first), then model in the order of `labels` (others after, as they came)."
    rank = lambda xs, x: xs.index(x) if x in xs else len(xs)
    return sorted(rows, key=lambda r: (rank(['test', *VIEW_SPLITS], r['split']), rank(['gt', 'detected'], r['keypoints']), rank(labels, r['model'])))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--runs', default='/work/runs')
    p.add_argument('--out', required=True)
    p.add_argument('--every', type=int, default=8)
    p.add_argument('--every-views', type=int, default=8)
    p.add_argument('--gmm-steps', type=int, default=1500)
    p.add_argument('--only', nargs='*', default=None, help='labels to score (default: all)')
    p.add_argument('--keypoints', nargs='*', default=['gt', 'detected'], help='2D sources to score (default: both)')
    p.add_argument('--splits', nargs='*', default=['test', 'test-views', 'test-bodies'], help='splits to score: test, and the virtual-camera splits of VIEW_SPLITS (gt 2D only)')
    add_merge_arguments(p)
    p.add_argument('--extra', nargs='*', default=[], metavar='LABEL=FOLDER', help='more models to score beside the shipped ones: a label and a run or checkpoint folder each')
    a = p.parse_args()
    torch.set_num_threads(1)
    runs = Path(a.runs)
    world = load_cmu_world()
    splits = {kp: benchmark_splits(kp, path=world) for kp in ('gt', 'detected')}
    views = dict(splits['gt'], **{s: load_benchmark(s, 'gt', path=world) for s in VIEW_SPLITS if s in a.splits})  # filmed once, scored by every model
    every = {'test': a.every, **{s: a.every_views for s in VIEW_SPLITS}}
    want = lambda label: not a.only or label in a.only
    models = {'linear': None, 'MixSTE': runs/'mixste', 'DiffHPE-2D': runs/'diffhpe-2d', 'DiffHPE-Wrapper': runs/'diffhpe-wrapper',
              'DiffPose frame (released)': runs/'diffpose', 'DiffPose video (released)': runs/'diffpose-video',
              'DiffHPE-2D (wild, lift default)': runs/'diffhpe-2d-wild'}
    for e in a.extra:
        label, sep, folder = e.partition('=')
        if not sep or not label or label in models: p.error(f'--extra wants LABEL=FOLDER with a new label, got {e!r}')
        models[label] = Path(folder)
    gmm = 'DiffPose keypoint-GMM (keypoint-only variant)'
    if any('DiffPose' in k and want(k) for k in list(models) + [gmm]):
        frame = load_model(runs/'diffpose')
        if not (runs/'diffpose-video'/'config.json').is_file():
            save_diffpose(frame.with_mixste(load_model(runs/'mixste')).eval(), runs/'diffpose-video', extra={'made_from': {'denoiser': str(runs/'diffpose'), 'mixste': str(runs/'mixste')}})
    rows, t0 = [], time.time()
    for kp, sp in splits.items():
        if kp not in a.keypoints: continue
        labels = list(models) + [gmm]
        for label in labels:
            if not want(label): continue
            if label == gmm:
                gmm_dir = runs/f'diffpose-gmm-{kp}'
                if not (gmm_dir/'config.json').is_file():
                    t1 = time.time()
                    save_diffpose(keypoint_gmm_model(frame, splits['gt'], sp, a.gmm_steps), gmm_dir,
                                  extra={'fitted_on': f'train split, {kp} 2D', 'gcnpose_steps_per_fold': a.gmm_steps, 'folds': 3})
                    print(f'keypoint-GMM ({kp}) fitted in {time.time() - t1:.0f} s', flush=True)
                m = load_model(gmm_dir)
            else:
                m = models[label]
                m = FramewiseLifter(LinearLifter().fit(sp['train'])) if m is None else load_model(m) if isinstance(m, Path) else m
            for split in a.splits:
                if split == 'test' or kp == 'gt': rows.append(dict(score(m, label, kp, split, sp if split == 'test' else views, every[split], 5), **recipe_of(models.get(label))))
    out = dict(description=f'Every method on the embedded benchmark, one protocol (run_evaluation, cover mode: every frame of the scored sequences once, '
                           f'windows of 27 frames), every {a.every}th test sequence (test-views and test-bodies: every {a.every_views}th, four virtual cameras each); '
                           'diffusion models with their own sampler settings (DiffHPE: DDIM-5 eta=1, H=5; DiffPose released: its 2 DDIM steps, '
                           'H=1 since its hypotheses are identical copies; keypoint-GMM: H=5 mixture draws), mean of the hypotheses; seed 0; '
                           '1 torch thread on a shared 2-core CPU.',
               command='python tools/side_by_side.py ' + ' '.join(f'--{k.replace("_", "-")} ' + (' '.join(repr(x) for x in v) if isinstance(v, list) else str(v))
                                                    for k, v in vars(a).items() if v not in (None, [])),
               date=time.strftime('%Y-%m-%d'), seconds=round(time.time() - t0), rows=rows)
    out = merged(a, out, lambda r: (r['split'], r['keypoints'], r['model']))
    out['rows'] = in_table_order(out['rows'], list(models) + [gmm])
    Path(a.out).write_text(json.dumps(out, indent=1))
    print('wrote', a.out)


if __name__ == '__main__':
    main()
