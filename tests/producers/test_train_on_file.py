"""Training on an event file (a sponsor's history): labels, censoring, bad records,
and the known answer: a simulated world written to a file trains like the same
world in memory, with the oracle only where the truth is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trialwatch.models import dataset
from trialwatch.models.dataset import collect
from trialwatch.models.features import build_rows
from trialwatch.models.training import split_by_patient, train
from trialwatch.producers.files import write_avro, write_jsonl
from trialwatch.producers.simulator import SimulationConfig, simulate
from trialwatch.producers.training_sets import file_training_set, world_training_set
from trialwatch.schemas.contract import MS_PER_DAY, TERMINAL

H = 60
WORLD = simulate(SimulationConfig(seed=31, n_participants=1_500, n_trials=6))


def _truth_labels(world, horizon_days: int) -> np.ndarray:
    """Per event: the simulator's own participant outcome says "withdrew within H"."""
    withdrawn_at = {
        e["patient_id"]: e["event_time"]
        for e in world.events
        if e["event_type"] == "WITHDRAWN" and world.outcome[e["patient_id"]] == "WITHDRAWN"
    }
    h = horizon_days * MS_PER_DAY
    return np.array(
        [
            e["patient_id"] in withdrawn_at
            and e["event_time"] < withdrawn_at[e["patient_id"]] <= e["event_time"] + h
            for e in world.events
        ]
    )


def _records(events):
    return ((i, e, None) for i, e in enumerate(events, start=1))


@pytest.mark.parametrize("suffix", [".jsonl", ".avro"])
def test_labels_from_a_file_equal_the_simulators_truth(tmp_path, suffix):
    path = tmp_path / f"world{suffix}"
    (write_avro if suffix == ".avro" else write_jsonl)(WORLD.events, path)
    data = file_training_set(path)
    rows = collect(data.records(), H)
    expected = _truth_labels(WORLD, H)
    assert rows.observed.all()  # every participant's end is in the file: nothing censored
    assert np.array_equal(rows.y.astype(bool), expected[rows.event_index])
    # One row per applied non-terminal event (events after a participant's end are none).
    ended_at = {
        e["patient_id"]: e["event_time"] for e in WORLD.events if e["event_type"] in TERMINAL
    }
    scored = [
        i
        for i, e in enumerate(WORLD.events)
        if e["event_type"] not in TERMINAL and e["event_time"] <= ended_at[e["patient_id"]]
    ]
    assert set(rows.event_index.tolist()) <= set(scored)
    assert len(rows.event_index) >= 0.99 * len(scored)
    assert 0.02 < rows.y.mean() < 0.2


def test_streamed_rows_equal_build_rows_as_float32(monkeypatch):
    events = WORLD.events[:20_000]
    whole = build_rows(events)
    monkeypatch.setattr(dataset, "CHUNK_ROWS", 997)
    seen: list[int] = []
    rows = collect(_records(events), H, progress=seen.append)
    assert rows.X.dtype == np.float32 and rows.X.flags.c_contiguous
    assert rows.X.tobytes() == whole.X.astype(np.float32).tobytes()
    assert np.array_equal(rows.event_index, whole.event_index)
    assert len(seen) == len(rows.X) // 997 and seen == sorted(seen)


def test_rows_near_the_end_of_an_export_are_censored_not_negative():
    """A mid-study export: participants still active at its end may yet withdraw."""
    cutoff = WORLD.events[len(WORLD.events) * 2 // 3]["event_time"]
    export = [e for e in WORLD.events if e["event_time"] <= cutoff]
    rows = collect(_records(export), H)
    truth = _truth_labels(WORLD, H)[rows.event_index]  # what really happened next
    end = max(e["event_time"] for e in export)
    near_end = rows.event_time + H * MS_PER_DAY > end
    active = ~rows.ended[rows.patient]
    # No row is labelled negative while its horizon runs past the export's end.
    assert not (rows.observed & (rows.y == 0) & near_end & active).any()
    # The censored rows are exactly those, unless a withdrawal in the file decides them.
    assert np.array_equal(~rows.observed, near_end & active & (rows.y == 0))
    assert (~rows.observed).sum() > 1_000
    # Some of them would have been wrong negatives: the participant withdrew after the end.
    assert truth[~rows.observed].sum() > 10
    # Every label that is kept is the true one.
    assert np.array_equal(rows.y[rows.observed].astype(bool), truth[rows.observed])
    # Finished participants are observed to their end, even near the export's end.
    assert (rows.observed & near_end & ~active).any()
    # The split leaves censored rows out and keeps each patient in one fold.
    split = split_by_patient(rows)
    assert not ((split.train | split.valid | split.test) & ~rows.observed).any()
    folds = [set(rows.patient[m].tolist()) for m in (split.train, split.valid, split.test)]
    assert not (folds[0] & folds[1] or folds[0] & folds[2] or folds[1] & folds[2])
    first_test = rows.enrolled_at[list(folds[2])].min()
    assert rows.enrolled_at[list(folds[0])].max() <= first_test


def test_bad_records_are_reported_by_number_and_the_rest_is_used(tmp_path):
    events = WORLD.events[:3_000]
    lines = [json.dumps(e) for e in events]
    orphan = next(
        i for i, e in enumerate(events) if e["event_type"] == "VISIT_COMPLETED"
    )  # its patient's ENROLLED goes missing below
    enrolled = next(
        i
        for i, e in enumerate(events)
        if e["event_type"] == "ENROLLED" and e["patient_id"] == events[orphan]["patient_id"]
    )
    lines[enrolled] = "{truncated"
    lines[10] = json.dumps({**events[10], "event_type": "TELEPORTED"})
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows = collect(file_training_set(path).records(), H)
    rejected = rows.report["rejected"]
    numbers = [r["number"] for r in rejected["first"]]
    assert numbers[:2] == sorted([enrolled + 1, 11])
    assert orphan + 1 in numbers
    reasons = {r["number"]: r["reason"] for r in rejected["first"]}
    assert reasons[enrolled + 1].startswith("malformed_json")
    assert reasons[orphan + 1].startswith("not_enrolled")
    assert rejected["by_reason"]["not_enrolled"] >= 1
    assert rows.report["records"] == 3_000
    assert len(rows.event_index) > 2_500


def test_a_missing_or_unknown_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such event file"):
        file_training_set(tmp_path / "nope.jsonl")
    (tmp_path / "events.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"\.jsonl or \.avro"):
        file_training_set(tmp_path / "events.csv")


def test_known_answer_a_world_trains_the_same_from_a_file_as_in_memory(tmp_path):
    path = tmp_path / "world.avro"
    write_avro(WORLD.events, path)
    from_file = train(file_training_set(path), horizon_days=H, out_dir=tmp_path / "file")
    in_memory = train(world_training_set(WORLD, "test"), horizon_days=H, out_dir=tmp_path / "mem")
    card_f = json.loads((from_file / "model_card.json").read_text())
    card_m = json.loads((in_memory / "model_card.json").read_text())
    assert card_f["data"]["rows"] == card_m["data"]["rows"]
    for model in ("lightgbm", "logistic_regression", "one_rule_intervals_since_last_visit"):
        for metric in ("roc_auc", "pr_auc"):
            assert card_f["test_metrics"][model][metric] == pytest.approx(
                card_m["test_metrics"][model][metric], abs=1e-6
            )
    # The oracle (and the CLV check against delivered value) only where truth exists.
    assert "oracle" in card_m["test_metrics"] and card_m["ratio_to_oracle"]["roc_auc"] > 0.9
    assert "oracle" not in card_f["test_metrics"] and card_f["ratio_to_oracle"] is None
    assert card_f["clv_decile_calibration"] is None
    assert card_f["data"]["format"] == "avro" and card_f["data"]["input"]["rejected"]["count"] == 0
    assert "oracle_roc_auc" not in card_f["transfer"]["test split"]


def test_folds_are_binned_and_scored_by_index_as_from_copies(monkeypatch):
    """LightGBM fed rows by index (no fold copy) and scored a block at a time
    gives what a copy of the same rows gives."""
    import lightgbm as lgb

    from trialwatch.models import training

    rows = collect(_records(WORLD.events[:20_000]), H)
    X, y = rows.X, rows.y
    idx = np.flatnonzero(rows.observed)[::2]
    seq = lgb.Dataset(training._Rows(X, idx), y[idx], params={"verbose": -1}).construct()
    copy = lgb.Dataset(X[idx], y[idx], params={"verbose": -1}).construct()
    assert seq.num_data() == copy.num_data() == len(idx)
    assert np.array_equal(seq.get_label(), copy.get_label())
    bins = [(seq.feature_num_bin(j), copy.feature_num_bin(j)) for j in range(X.shape[1])]
    assert all(a == b for a, b in bins), bins
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7}, copy, 5)
    monkeypatch.setattr(training, "PREDICT_BLOCK", 997)
    assert np.array_equal(training._predict(booster, X, idx), booster.predict(X[idx]))


def test_shifted_worlds_are_simulated_when_read_and_the_same_every_time():
    from trialwatch.producers.training_sets import SHIFTED_WORLDS, shifted_evaluations

    worlds = shifted_evaluations("quick")
    assert list(worlds) == list(SHIFTED_WORLDS) and len(worlds) == len(SHIFTED_WORLDS)
    name = list(SHIFTED_WORLDS)[1]
    first, again = worlds[name], worlds[name]
    assert first is not again  # built on demand, not held
    assert first.source["fingerprint_sha256"] == again.source["fingerprint_sha256"]
    assert first.source["parameters"]["hazard_scale"] == SHIFTED_WORLDS[name]["hazard_scale"]
