"""Label-free RREH selection rules, evaluated offline on the stored criterion tables.

Issue 18. ``hashjax.rreh.select`` scores theta and init_v by the neighbourhood
criterion (``nb@0.1`` of experiments/rreh_criterion_study.py) and never scores lam:
``criterion.choose`` keeps the largest lam (1e-2), then the best score. At 10% paired
the labelled validation pick often uses a smaller lam on the ``zer`` pairs. This
script asks, without refitting anything, whether a simple label-free RULE over the
stored per-fold criterion scores does better.

Inputs (joined by (data set, seed, ratio)):

* ``rreh_criterion_study.jsonl``: per unit the 18 STUDY_GRID points and, per
  criterion (``mrr``, ``nb@s``, ``nbphi@s``, ``self@s``), per point, the score of each
  of the 3 selection folds;
* ``rreh_select_eval.jsonl``: per unit and grid point the validation mAP (20% of the
  database as queries against the rest; database labels only) and the test mAP;
* ``rreh_select_eval_now.jsonl``: the library's own pick (``rreh.select`` today).

A rule maps one unit's score tables (and its paired ratio, which the user knows) to
a grid point. It is judged by the validation mAP of its pick: ``regret`` = the best
validation mAP of the unit's grid minus the pick's; per ratio the mean regret over
units and the number of data sets whose seed-mean regret is at most 0.01; test mAP
is reported only. ``W/L`` counts data sets whose seed-mean validation mAP is higher /
lower than under today's rule. Every number of the main table is IN-SAMPLE (the rules
were written after looking at these tables); rules with a tuned constant are also
reported leave-one-data-set-out (LODO): the constant is tuned on the 10% units of the
other 15 data sets (least mean regret, ties to the most conservative value) and
applied to the held-out data set at every ratio.

  python experiments/rreh_rule_study.py --out experiments/results
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

import _common

NAME = "rreh_rule_study"
BASE = "nb@0.1"          # the library's criterion (neighbourhood, share 0.1)
MISS = 0.01              # "within 0.01 of the labelled validation pick"
KS = (math.inf, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.0)   # conservative first


# --------------------------------------------------------------------------- data


def _jsonl(path):
  out = {}
  if os.path.exists(path):
    with open(path) as f:
      for r in (json.loads(x) for x in f if x.strip()):
        out.setdefault((r["dataset"], r["seed"], r["ratio"]), r)   # first record
  return out


def load(folder):
  """One dict per unit of the evaluation; ``S`` is None where no study record."""
  study = _jsonl(os.path.join(folder, "rreh_criterion_study.jsonl"))
  evals = _jsonl(os.path.join(folder, "rreh_select_eval.jsonl"))
  now = _jsonl(os.path.join(folder, "rreh_select_eval_now.jsonl"))
  units = []
  for key, e in sorted(evals.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
    pts = [{k: g[k] for k in ("theta", "lam", "init_v")} for g in e["grid"]]
    u = dict(dataset=key[0], seed=key[1], ratio=key[2], points=pts,
             lam=np.asarray([p["lam"] for p in pts]),
             val=np.asarray([g["val_map"] for g in e["grid"]]),
             test=np.asarray([g["map"] for g in e["grid"]]), S=None, now=None)
    s = study.get(key)
    if s is not None:
      assert s["points"] == pts, key
      u["S"] = {c: np.asarray(v, np.float64) for c, v in s["scores"].items()}
    n = now.get(key)
    if n is not None:
      u["now"] = next(j for j, p in enumerate(pts)
                      if all(p[k] == n["chosen"][k] for k in p))
    units.append(u)
  return units


# ------------------------------------------------------------------ rule helpers


def _mean(u, c):
  """Fold-mean score of criterion ``c`` per grid point (-inf where not finite)."""
  s = u["S"][c]
  m = s.mean(axis=1)
  return np.where(np.all(np.isfinite(s), axis=1), m, -np.inf)


def _best(u, c, mask):
  """Argmax of ``c``'s fold mean over ``mask``; ties: larger lam, then grid order."""
  m = _mean(u, c)
  idx = [j for j in range(len(m)) if mask[j] and np.isfinite(m[j])] or [
      j for j in range(len(m)) if mask[j]]
  return min(idx, key=lambda j: (-m[j], -u["lam"][j], j))


def _top(u):
  return u["lam"] == u["lam"].max()


def _same_shape(u, j):
  """Mask of the points with point j's theta and init_v."""
  p = u["points"][j]
  return np.asarray([q["theta"] == p["theta"] and q["init_v"] == p["init_v"]
                     for q in u["points"]])


def _ranks(x):
  """Average ranks of ``x`` (higher value = higher rank); -inf ranks lowest."""
  order = np.argsort(x, kind="stable")
  r = np.empty(len(x))
  r[order] = np.arange(len(x), dtype=np.float64)
  for v in np.unique(x):                      # average ranks over ties
    r[x == v] = r[x == v].mean()
  return r


# ------------------------------------------------------------------------- rules


def today(u):
  """The library: the largest lam, then the best neighbourhood score."""
  return _best(u, BASE, _top(u))


def argmax_all(c=BASE):
  def rule(u):
    return _best(u, c, np.ones(len(u["lam"]), bool))
  rule.__doc__ = f"argmax of {c} over all 18 points (lam scored too)"
  return rule


def top_lam(c):
  def rule(u):
    return _best(u, c, _top(u))
  rule.__doc__ = f"largest lam, then the best {c}"
  return rule


def se_rule(k, se="paired", same=False, c=BASE):
  """theta/init at the largest lam by ``c`` (today's pick j0); the best point of a
  smaller lam j1 (among all smaller-lam points, or those with j0's theta and init_v
  when ``same``) replaces j0 only if its fold-mean score beats j0's by more than k
  standard errors: of the per-fold differences (``paired``) or of j0's fold scores
  (``top``)."""
  def rule(u):
    top = _top(u)
    j0 = _best(u, c, top)
    mask = ~top & (_same_shape(u, j0) if same else True)
    j1 = _best(u, c, mask)
    a, b = u["S"][c][j0], u["S"][c][j1]
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
      return j0
    d = b - a
    s = (np.std(d, ddof=1) if se == "paired" else np.std(a, ddof=1)) / np.sqrt(d.size)
    return j1 if d.mean() > (k * s if math.isfinite(k) else math.inf) else j0
  return rule


def unanimous(c=BASE, same=False):
  """A smaller lam's best point replaces today's pick only if it beats it on every
  fold."""
  def rule(u):
    top = _top(u)
    j0 = _best(u, c, top)
    j1 = _best(u, c, ~top & (_same_shape(u, j0) if same else True))
    d = u["S"][c][j1] - u["S"][c][j0]
    return j1 if np.all(np.isfinite(d)) and np.all(d > 0) else j0
  return rule


def fold_vote(c=BASE):
  """Each fold votes for the lam of its own argmax over all points; the lam with
  most votes (ties: larger lam), then the best fold-mean ``c`` at that lam."""
  def rule(u):
    s = u["S"][c]
    votes = {}
    for f in range(s.shape[1]):
      col = np.where(np.isfinite(s[:, f]), s[:, f], -np.inf)
      lam = u["lam"][int(np.argmax(col))]
      votes[lam] = votes.get(lam, 0) + 1
    lam = max(votes, key=lambda x: (votes[x], x))
    return _best(u, c, u["lam"] == lam)
  return rule


def lam_by(c_lam, c=BASE):
  """Per lam the best theta/init by ``c``; then the lam whose pick is best by
  ``c_lam`` (ties: larger lam)."""
  def rule(u):
    picks = [_best(u, c, u["lam"] == lam) for lam in sorted(set(u["lam"]))]
    m = _mean(u, c_lam)
    return min(picks, key=lambda j: (-m[j], -u["lam"][j], j))
  return rule


def lam_by_same(c_lam, c=BASE):
  """theta/init at the largest lam by ``c``; then lam by ``c_lam`` at that
  theta/init."""
  def rule(u):
    j0 = _best(u, c, _top(u))
    return _best(u, c_lam, _same_shape(u, j0))
  return rule


def rank_avg(c2, c=BASE, top_only=False):
  """The best mean of the ranks (over the grid points considered) of ``c`` and
  ``c2``; over all 18 points or at the largest lam only."""
  def rule(u):
    mask = _top(u) if top_only else np.ones(len(u["lam"]), bool)
    idx = np.flatnonzero(mask)
    r = (_ranks(_mean(u, c)[idx]) + _ranks(_mean(u, c2)[idx])) / 2
    return int(idx[min(range(len(idx)), key=lambda i: (-r[i], -u["lam"][idx[i]], i))])
  return rule


def by_ratio(low, high=today, cut=0.1):
  """``low`` when the paired ratio is at most ``cut``, else ``high``."""
  def rule(u):
    return low(u) if u["ratio"] <= cut else high(u)
  return rule


def rel_margin(m, c=BASE):
  """A smaller lam's best point replaces today's pick if its fold-mean score is
  more than ``m`` (relative) above it."""
  def rule(u):
    top = _top(u)
    j0 = _best(u, c, top)
    j1 = _best(u, c, ~top)
    s = _mean(u, c)
    return j1 if np.isfinite(s[j1]) and s[j1] > (1 + m) * s[j0] else j0
  return rule


def full_pairing(base=today, how="smallest"):
  """With every item paired (ratio 1: no unpaired rows) theta has no effect on the
  fit (it only ridges the reconstruction of unpaired rows; the stored validation and
  test mAP are identical across theta there), but the selection folds move the
  held-out items to the unpaired sets, so the folds' theta still sways the score and
  with it init_v and lam. Then: score at the smallest theta only (``smallest``) or
  average the score over theta (``mean``) before applying ``base``; otherwise
  ``base``."""
  def rule(u):
    if u["ratio"] < 1.0:
      return base(u)
    th = np.asarray([p["theta"] for p in u["points"]])
    if how == "smallest":
      keep = th == th.min()
      v = dict(u, S={c: np.where(keep[:, None], x, -np.inf) for c, x in u["S"].items()})
      return base(v)
    # mean over theta: every point gets the mean of its (lam, init_v) group
    key = [(p["lam"], p["init_v"]) for p in u["points"]]
    S = {}
    for c, x in u["S"].items():
      y = np.array(x)
      for k in set(key):
        idx = [j for j in range(len(key)) if key[j] == k]
        y[idx] = x[idx].mean(axis=0)
      S[c] = np.where((th == th.min())[:, None], y, -np.inf)
    return base(dict(u, S=S))
  return rule


def oracle_top(u):
  """NOT label-free: the best validation mAP at the largest lam (the floor of every
  rule that keeps lam 1e-2)."""
  top = _top(u)
  return int(np.flatnonzero(top)[np.argmax(u["val"][top])])


def oracle_lam(u):
  """NOT label-free: the lam of the best validation point, theta/init by nb@0.1 at
  that lam (what a perfect lam rule would add to today's theta/init choice)."""
  lam = u["lam"][int(np.argmax(u["val"]))]
  return _best(u, BASE, u["lam"] == lam)


def oracle_per_lam(u):
  """NOT label-free: nb@0.1's theta/init pick at every lam, then the lam whose pick
  has the best validation mAP: the ceiling of every rule that picks among those
  three points (the SE, all-folds and margin rules)."""
  picks = [_best(u, BASE, u["lam"] == lam) for lam in sorted(set(u["lam"]))]
  return max(picks, key=lambda j: (u["val"][j], u["lam"][j]))


def library_now(u):
  """The library's actual pick (rreh_select_eval_now.jsonl)."""
  return u["now"]


# -------------------------------------------------------------------- evaluation


def _needs_scores(rule):
  return rule is not library_now


def evaluate(units, rule):
  """``{(dataset, seed, ratio): pick}`` for the units the rule can score."""
  out = {}
  for u in units:
    if (u["S"] is None and _needs_scores(rule)) or (
        rule is library_now and u["now"] is None):
      continue
    out[(u["dataset"], u["seed"], u["ratio"])] = rule(u)
  return out


def summary(units, picks, ratio, ref=None):
  """Mean val / regret / test and per-data-set seed-mean regret at one ratio."""
  by = {(u["dataset"], u["seed"], u["ratio"]): u for u in units}
  rows = [(by[k], j) for k, j in picks.items() if k[2] == ratio]
  if not rows:
    return None
  reg = [u["val"].max() - u["val"][j] for u, j in rows]
  per = {}
  for (u, j), g in zip(rows, reg):
    per.setdefault(u["dataset"], []).append(g)
  per = {d: float(np.mean(v)) for d, v in per.items()}
  tg = {}
  for u, j in rows:       # the issue's measure: test mAP of the labels' pick minus
    tg.setdefault(u["dataset"], []).append(      # the rule's (reported only)
        u["test"][int(np.argmax(u["val"]))] - u["test"][j])
  tg = {d: float(np.mean(v)) for d, v in tg.items()}
  out = dict(units=len(rows), sets=len(per), val=float(np.mean([u["val"][j]
                                                                 for u, j in rows])),
             regret=float(np.mean(reg)), within=sum(v <= MISS for v in per.values()),
             test=float(np.mean([u["test"][j] for u, j in rows])), per=per,
             worst=max(per.items(), key=lambda kv: kv[1]),
             tgap=float(np.mean(list(tg.values()))),
             twithin=sum(v <= MISS for v in tg.values()))
  if ref is not None:
    d = {s: ref["per"][s] - per[s] for s in per if s in ref["per"]}
    out["wins"] = sum(v > 1e-9 for v in d.values())
    out["losses"] = sum(v < -1e-9 for v in d.values())
  return out


def lodo(units, family, ratios, tune_ratios=(0.1,)):
  """Leave-one-data-set-out: for each data set, the family member of least mean
  10%-paired regret on the other data sets (ties: the first, most conservative),
  applied to the held-out data set at every ratio.

  Args:
    family: ``[(label, rule)]``, most conservative first.

  Returns:
    ``(picks, chosen)``: ``{unit: pick}`` and ``{dataset: label}``.
  """
  evals = [evaluate(units, r) for _, r in family]
  by = {(u["dataset"], u["seed"], u["ratio"]): u for u in units}
  sets = sorted({u["dataset"] for u in units if u["ratio"] == 0.1})
  picks, chosen = {}, {}
  for d in sets:
    def loss(e):
      per = []
      for x in tune_ratios:
        g = [by[k]["val"].max() - by[k]["val"][j] for k, j in e.items()
             if k[2] == x and k[0] != d]
        if g:
          per.append(np.mean(g))
      return float(np.mean(per))
    i = min(range(len(family)), key=lambda i: (round(loss(evals[i]), 12), i))
    chosen[d] = family[i][0]
    picks.update({k: j for k, j in evals[i].items() if k[0] == d and k[2] in ratios})
  return picks, chosen


def _kstr(k):
  return "inf" if not math.isfinite(k) else f"{k:g}"


CRITS = ("mrr", "nb@0.01", "nb@0.03", "nb@0.05", "nb@0.1", "nb@0.2", "nb@0.3",
         "nbphi@0.01", "nbphi@0.03", "nbphi@0.05", "nbphi@0.1", "nbphi@0.2",
         "nbphi@0.3", "self@0.01", "self@0.03", "self@0.05", "self@0.1", "self@0.2",
         "self@0.3")


def rules():
  """``[(label, rule)]``: today's rule first, then the candidates."""
  r = [("today: largest lam, best nb@0.1 (reference)", today),
       ("library pick now (rreh_select_eval_now.jsonl)", library_now),
       ("(labels) best val at the largest lam: floor of today's family", oracle_top),
       ("(labels) the val-best lam, theta/init by nb@0.1", oracle_lam),
       ("(labels) nb@0.1's pick per lam, the lam by val: ceiling of the lam rules",
        oracle_per_lam),
       ("argmax nb@0.1 over all lam", argmax_all()),
       ("argmax nb@0.2 over all lam", argmax_all("nb@0.2"))]
  for k in (1.0, 2.0, 3.0):
    r.append((f"smaller lam if it beats by > {k:g} paired SE", se_rule(k)))
  for k in (0.5, 1.0, 2.0, 3.0):
    r.append((f"smaller lam if it beats by > {k:g} SE of the top-lam folds",
              se_rule(k, se="top")))
  for k in (1.0, 2.0):
    r.append((f"smaller lam, same theta/init, if it beats by > {k:g} paired SE",
              se_rule(k, same=True)))
  r.append(("smaller lam if it beats on all 3 folds", unanimous()))
  r.append(("smaller lam, same theta/init, if it beats on all 3 folds",
            unanimous(same=True)))
  r.append(("lam by majority of the folds' argmax", fold_vote()))
  for c in ("mrr", "self@0.1", "self@0.01", "nb@0.05", "nb@0.2", "nbphi@0.03",
            "nbphi@0.1"):
    r.append((f"theta/init by nb@0.1 per lam, lam by {c}", lam_by(c)))
  for c in ("mrr", "self@0.1", "nb@0.2"):
    r.append((f"theta/init by nb@0.1 at top lam, lam by {c} there", lam_by_same(c)))
  for c in ("self@0.1", "mrr", "nb@0.05", "nb@0.2", "nbphi@0.03"):
    r.append((f"rank average nb@0.1 + {c}, all lam", rank_avg(c)))
  for c in ("self@0.1", "nb@0.05", "nb@0.2", "nbphi@0.03"):
    r.append((f"rank average nb@0.1 + {c}, largest lam", rank_avg(c, top_only=True)))
  for m in (0.01, 0.02, 0.05):
    r.append((f"smaller lam if its nb@0.1 is > {m:.0%} higher", rel_margin(m)))
  r.append(("ratio 1: smallest theta only; else today", full_pairing()))
  r.append(("ratio 1: nb@0.1 averaged over theta; else today",
            full_pairing(how="mean")))
  r.append(("ratio 1: smallest theta, all-folds lam rule; else today",
            full_pairing(unanimous())))
  r.append(("ratio 1: smallest theta; ratio <= 0.1: all-folds rule; else today",
            full_pairing(by_ratio(unanimous()))))
  r.append(("ratio <= 0.1: argmax nb@0.1 over all lam; else today",
            by_ratio(argmax_all())))
  r.append(("ratio <= 0.1: > 2 paired SE rule; else today", by_ratio(se_rule(2.0))))
  r.append(("ratio <= 0.1: > 0.5 SE of the top-lam folds; else today",
            by_ratio(se_rule(0.5, se="top"))))
  r.append(("ratio <= 0.1: all-folds rule; else today", by_ratio(unanimous())))
  r.append(("ratio <= 0.1: lam by self@0.1; else today", by_ratio(lam_by("self@0.1"))))
  return r


FAMILIES = {
    "paired-SE k": [(_kstr(k), se_rule(k)) for k in KS],
    "top-lam-SE k": [(_kstr(k), se_rule(k, se="top")) for k in KS],
    "same theta/init, paired-SE k": [(_kstr(k), se_rule(k, same=True)) for k in KS],
    "ratio <= 0.1 only, paired-SE k": [(_kstr(k), by_ratio(se_rule(k))) for k in KS],
    "ratio <= 0.1 only, top-lam-SE k": [(_kstr(k), by_ratio(se_rule(k, se="top")))
                                        for k in KS],
    "relative margin m": [("inf", today)] + [(f"{m:g}", rel_margin(m)) for m in (
        0.1, 0.05, 0.02, 0.01, 0.005, 0.0)],
    "lam by criterion c": [("today", today)] + [(c, lam_by(c)) for c in CRITS],
    "rank average nb@0.1 + c (all lam)": [("today", today)] + [
        (c, rank_avg(c)) for c in CRITS if c != BASE],
    "rank average nb@0.1 + c (largest lam)": [("today", today)] + [
        (c, rank_avg(c, top_only=True)) for c in CRITS if c != BASE],
}


# ------------------------------------------------------------------------ report


def _cell(s):
  if s is None:
    return "n/a | n/a | n/a"
  wl = f"{s['wins']}/{s['losses']}" if "wins" in s else "-"
  return f"{s['regret']:.4f} | {s['within']} of {s['sets']} | {wl}"


def report(units, folder):
  ratios = sorted({u["ratio"] for u in units})
  have = {x: sum(u["S"] is not None for u in units if u["ratio"] == x) for x in ratios}
  tot = {x: sum(u["ratio"] == x for u in units) for x in ratios}
  lines = ["# Label-free selection rules for RREH, offline (issue 18)", "",
           "Command: `python experiments/rreh_rule_study.py --out experiments/results` "
           "(reads `rreh_criterion_study.jsonl`, `rreh_select_eval.jsonl`, "
           "`rreh_select_eval_now.jsonl`; no fits).", "",
           "Units with criterion-study scores (the rules need them): " +
           ", ".join(f"ratio {x:g}: {have[x]} of {tot[x]}" for x in ratios) +
           ". Regret = best validation mAP of the unit's 18-point grid minus the "
           "pick's (validation: 20% of the database as queries against the rest, "
           "database labels only); `within` = data sets whose seed-mean regret is "
           f"<= {MISS}; `W/L` = data sets with higher / lower seed-mean validation mAP "
           "than today's rule on the same units. `meets the bar`: regret lower at some "
           "ratio, higher at none, and no more data sets lost than won (all ratios "
           "together; in-sample). Test mAP is reported only. Every "
           "number in the first table is IN-SAMPLE: the rules were written after "
           "looking at these units. The study's scores are refits of the library's "
           "folds on all rows (the library samples at most 4096 rows, random ties): "
           "`library pick now` is the library's real pick, `today` is the same rule "
           "on the study's scores. `test gap to labels' pick` is the issue's measure "
           "(test mAP of the best-validation point minus the pick's, seed mean per "
           "data set, then mean; in brackets the data sets within 0.01; reported "
           "only).", ""]
  all_rules = rules()
  ref = {x: summary(units, evaluate(units, today), x) for x in ratios}
  head = "| rule | " + " | ".join(
      f"{x:g}: regret | {x:g}: within | {x:g}: W/L" for x in ratios) + \
      " | test mAP 0.1 | test gap to labels' pick: " + ", ".join(
          f"{x:g}" for x in ratios) + " | kar+pix 1.0 regret | meets the bar |"
  lines += ["## Rules (in-sample)", "", head,
            "|---" * (2 + 3 * len(ratios) + 3) + "|"]
  results = {}
  for label, rule in all_rules:
    picks = evaluate(units, rule)
    s = {x: summary(units, picks, x, None if rule is today else ref[x])
         for x in ratios}
    results[label] = s
    kp = [u["val"].max() - u["val"][picks[k]] for u in units
          for k in [(u["dataset"], u["seed"], u["ratio"])]
          if k in picks and u["dataset"] == "uci_kar+pix" and u["ratio"] == 1.0]
    bar = ""
    if not label.startswith("(labels)") and rule not in (today, library_now) and all(
        s[x] for x in ratios):
      lower = [x for x in ratios if s[x]["regret"] < ref[x]["regret"] - 1e-9]
      higher = [x for x in ratios if s[x]["regret"] > ref[x]["regret"] + 1e-9]
      wins = sum(s[x]["wins"] for x in ratios)
      losses = sum(s[x]["losses"] for x in ratios)
      if lower and not higher and wins >= losses:
        bar = "yes (lower at " + ", ".join(f"{x:g}" for x in lower) + ")"
      elif 0.1 in lower and higher:
        bar = "no: helps 10%, hurts " + ", ".join(f"{x:g}" for x in higher)
      elif lower and not higher:
        bar = "no: loses more data sets than it wins"
      else:
        bar = "no"
    lines.append(f"| {label} | " + " | ".join(_cell(s[x]) for x in ratios) +
                 f" | {s[0.1]['test']:.4f} | " + ", ".join(
                     f"{s[x]['tgap']:.4f} ({s[x]['twithin']})" if s[x] else "n/a"
                     for x in ratios) + " | "
                 f"{(f'{np.mean(kp):.4f} ({len(kp)})' if kp else 'n/a')} | {bar} |")
  for tune in ((0.1,), tuple(ratios)):
    lines += _lodo_table(units, ratios, tune, ref, all_rules)
  return _tail(lines, units, ratios, results, ref, all_rules)


def _lodo_table(units, ratios, tune, ref, all_rules):
  what = ("the OTHER data sets' 10% units" if tune == (0.1,) else
          "the OTHER data sets' units at every ratio (the mean of the per-ratio mean "
          "regrets, so 30% / 100% count as much as 10%)")
  lines = ["", f"## Leave-one-data-set-out, tuned on {'10% only' if tune == (0.1,) else 'every ratio'}",
           "",
            f"For every data set the family member of least mean regret on {what} "
            "is applied to the held-out data set at every ratio (ties: the most "
            "conservative member, listed first; `inf` / `today` = today's rule). "
            "In-sample best member (10%) shown for comparison.", "",
            "| family | " + " | ".join(f"{x:g}: regret | {x:g}: within | {x:g}: W/L"
                                      for x in ratios) +
            " | members chosen (data sets) | in-sample best member: 10% regret |",
            "|---" * (1 + 3 * len(ratios) + 2) + "|"]
  fams = dict(FAMILIES)
  fams["any label-free rule of the table above"] = [
      (lab, r) for lab, r in all_rules
      if r is not library_now and not lab.startswith("(labels)")]
  for fam, members in fams.items():
    picks, chosen = lodo(units, members, set(ratios), tune)
    s = {x: summary(units, picks, x, ref[x]) for x in ratios}
    cnt = {}
    for v in chosen.values():
      cnt[v] = cnt.get(v, 0) + 1
    ins = [(lab, summary(units, evaluate(units, r), 0.1)["regret"])
           for lab, r in members]
    best = min(ins, key=lambda t: t[1])
    lines.append(f"| {fam} | " + " | ".join(_cell(s[x]) for x in ratios) + " | " +
                 ", ".join(f"{k} ({v})" for k, v in cnt.items()) +
                 f" | {best[0]}: {best[1]:.4f} |")
  return lines


def _tail(lines, units, ratios, results, ref, all_rules):
  lines += ["", "## Constant curves (in-sample mean regret per ratio)", "",
            "How smooth is the tuned constant? A rule whose regret jumps between "
            "neighbouring values of k is fitting the noise of these units.", "",
            "| family | ratio | " + " | ".join(
                lab for lab, _ in FAMILIES["paired-SE k"]) + " |",
            "|---" * (2 + len(KS)) + "|"]
  for fam in ("paired-SE k", "top-lam-SE k", "same theta/init, paired-SE k"):
    for x in ratios:
      cells = []
      for _, r in FAMILIES[fam]:
        sm = summary(units, evaluate(units, r), x)
        cells.append(f"{sm['regret']:.4f}" if sm else "n/a")
      lines.append(f"| {fam} | {x:g} | " + " | ".join(cells) + " |")
  lines += ["", "## Is the 10% gain larger than the noise? (in-sample)", "",
            "Per data set: seed-mean regret of today's rule minus the rule's "
            "(positive = the rule is better); mean and standard error over the 16 "
            "data sets, and a 95% bootstrap interval of the mean (10,000 resamples "
            "of data sets, seed 0).", "",
            "| rule | mean gain | SE | 95% bootstrap | sets better / worse / same |",
            "|---|---|---|---|---|"]
  boot = np.random.default_rng(0)
  for label, _ in all_rules[5:]:
    s1, s0 = results[label][0.1], ref[0.1]
    d = np.asarray([s0["per"][k] - s1["per"][k] for k in sorted(s0["per"])])
    bs = boot.choice(d, size=(10_000, d.size)).mean(axis=1)
    lines.append(f"| {label} | {d.mean():+.4f} | {d.std(ddof=1) / np.sqrt(d.size):.4f}"
                 f" | [{np.quantile(bs, 0.025):+.4f}, {np.quantile(bs, 0.975):+.4f}] | "
                 f"{int((d > 1e-9).sum())} / {int((d < -1e-9).sum())} / "
                 f"{int((np.abs(d) <= 1e-9).sum())} |")
  # Per data set at 10% (seed-mean regret) for a few rules.
  show = [lab for lab, _ in all_rules][:1] + [
      "argmax nb@0.1 over all lam", "smaller lam if it beats by > 2 paired SE",
      "smaller lam if it beats by > 0.5 SE of the top-lam folds",
      "smaller lam if it beats on all 3 folds",
      "smaller lam if its nb@0.1 is > 2% higher",
      "ratio 1: smallest theta only; else today",
      "ratio 1: nb@0.1 averaged over theta; else today",
      "(labels) nb@0.1's pick per lam, the lam by val: ceiling of the lam rules",
      "theta/init by nb@0.1 per lam, lam by self@0.1",
      "rank average nb@0.1 + self@0.1, all lam"]
  for x in ratios:
    sets = sorted(results[show[0]][x]["per"]) if results[show[0]][x] else []
    if not sets:
      continue
    lines += ["", f"## Seed-mean regret per data set, ratio {x:g} (in-sample)", "",
              "| data set | " + " | ".join(show) + " |", "|---" * (1 + len(show)) + "|"]
    for d in sets:
      lines.append(f"| {d} | " + " | ".join(
          f"{results[lab][x]['per'][d]:.4f}" for lab in show) + " |")
  md = "\n".join(lines) + "\n"
  return md, results


def main():
  ap = _common.parser(NAME, __doc__)
  ap.add_argument("--results", default=_common.RESULTS,
                  help="folder with the stored tables (default experiments/results)")
  a = ap.parse_args()
  units = load(a.results)
  md, _ = report(units, a.results)
  os.makedirs(a.out, exist_ok=True)
  with open(os.path.join(a.out, NAME + ".md"), "w") as f:
    f.write(md)
  print(md)


if __name__ == "__main__":
  main()
