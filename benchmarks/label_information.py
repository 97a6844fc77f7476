"""What the dev datasets' ``task`` label tells a router that the prompt text cannot.

Issue 2 asks the default router, which reads prompt text only, to reach at least the AIQ of
a task-label router that is told each prompt's task. This script measures why that is out of
reach on mmlupro, and why routerbench's best model cannot be beaten, from the outcome data
alone (no router is trained):

1. mmlupro, per task: how often gemini-1.5-pro answers with a run of repeated "The answer
   is" lines, and the quality of pro and of gemini-1.5-flash. The two models' order, the top
   operating point's only decision, flips with the task because of that behaviour.
2. mmlupro, within one task: how well prompt text predicts the repeated answers
   (cross-validated ROC AUC of tf-idf logistic regression). Near 0.5 means the behaviour
   follows the task (the context the benchmark's harness gave the model), not the question.
3. mmlupro, the top decision on seeded 70/30 splits: the label's per-task choice between
   flash and pro, against the same label plus the prompt's tf-idf n-grams. If the text adds
   nothing to the label, a text-only router can at best recover the label.
4. routerbench, per task: the best model's margin over the runner-up and how often another
   model is right where it is wrong.

    .venv/bin/python benchmarks/label_information.py [--seeds 0 1 2 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from switchman.data import load_outcomes, split_by_prompt, to_matrices

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routing"
STRONG, FAST = "gemini-1.5-pro-002", "gemini-1.5-flash-002"


def word_tfidf() -> TfidfVectorizer:
    """The text features both mmlupro probes read: tf-idf of word uni- and bigrams."""
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def pro_and_flash(outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per prompt: task, prompt, both models' quality and pro's repeated answers."""
    both = outcomes[outcomes["model"].isin([STRONG, FAST])]
    wide = both.pivot(index="prompt_id", columns="model", values="quality")
    first = both.drop_duplicates("prompt_id").set_index("prompt_id").loc[wide.index]
    pro_text = both[both["model"] == STRONG].set_index("prompt_id")["response"].loc[wide.index]
    return pd.DataFrame({"task": first["task"], "prompt": first["prompt"],
                         "pro": wide[STRONG], "flash": wide[FAST],
                         "repeats": pro_text.fillna("").str.count("The answer is") > 1})


def print_task_table(rows: pd.DataFrame) -> None:
    table = rows.groupby("task").agg(prompts=("pro", "size"), pro_repeats=("repeats", "mean"),
                                     pro_quality=("pro", "mean"), flash_quality=("flash", "mean"))
    table["better"] = np.where(table["flash_quality"] > table["pro_quality"], "flash", "pro")
    print(f"\n## 1. mmlupro per task: {STRONG} repeating its answer, and both models' quality")
    print(table.round(3).to_string())


def repeats_auc(rows: pd.DataFrame, task: str) -> float:
    """Cross-validated ROC AUC of predicting pro's repeated answers from one task's prompts."""
    part = rows[rows["task"] == task]
    scores = cross_val_predict(LogisticRegression(C=4.0, max_iter=2000),
                               word_tfidf().fit_transform(part["prompt"]), part["repeats"], cv=5,
                               method="predict_proba")[:, 1]
    return float(roc_auc_score(part["repeats"], scores))


def top_decision(train: pd.DataFrame, test: pd.DataFrame) -> tuple[float, float]:
    """Test quality of choosing flash or pro by task label, and by label plus prompt text."""
    flash_wins = (train["flash"] - train["pro"]).groupby(train["task"]).mean() > 0
    by_label = test["task"].map(flash_wins).fillna(False).to_numpy(bool)
    tasks = sorted(train["task"].unique())
    text = word_tfidf().fit(train["prompt"])

    def features(rows: pd.DataFrame) -> sparse.csr_matrix:
        onehot = pd.get_dummies(pd.Categorical(rows["task"], categories=tasks)).to_numpy(float)
        return sparse.hstack([text.transform(rows["prompt"]), sparse.csr_matrix(onehot)]).tocsr()

    disagree = train[train["flash"] != train["pro"]]
    model = LogisticRegression(C=1.0, max_iter=3000)
    model.fit(features(disagree), disagree["flash"] > disagree["pro"])
    by_text = model.predict_proba(features(test))[:, 1] > 0.5

    def quality(choose_flash: np.ndarray) -> float:
        return float(np.where(choose_flash, test["flash"], test["pro"]).mean())

    return quality(by_label), quality(by_text)


def print_routerbench() -> None:
    table = to_matrices(load_outcomes(DATA / "routerbench.parquet"))
    best = int(np.argmax(table.quality.mean(axis=0)))
    others = np.delete(np.arange(len(table.models)), best)
    print(f"\n## 4. routerbench per task: {table.models[best]} against the other "
          f"{len(others)} models")
    for task in np.unique(table.tasks):
        quality = table.quality[table.tasks == task]
        runner_up = others[np.argmax(quality[:, others].mean(axis=0))]
        beaten = (quality[:, others] > quality[:, [best]]).any(axis=1).mean()
        print(f"{task:16s} {len(quality):5d} prompts  best {quality[:, best].mean():.3f}  "
              f"runner-up {table.models[runner_up]} {quality[:, runner_up].mean():.3f}  "
              f"some model right where it is wrong: {beaten:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()

    rows = pro_and_flash(load_outcomes(DATA / "mmlupro.parquet"))
    print_task_table(rows)
    print("\n## 2. predicting pro's repeated answers from the prompt, within a task (ROC AUC)")
    for task in ("mmlu-pro/chemistry", "mmlu-pro/math", "mmlu-pro/computer science"):
        print(f"{task:28s} {repeats_auc(rows, task):.3f}")
    print("\n## 3. top decision (flash or pro), test quality per split seed")
    print("seed  by task label  label + prompt text")
    for seed in args.seeds:
        train, test = split_by_prompt(rows.reset_index(), 0.3, seed=seed)
        label, with_text = top_decision(train, test)
        print(f"{seed:4d}  {label:13.4f}  {with_text:19.4f}")
    print_routerbench()


if __name__ == "__main__":
    main()
