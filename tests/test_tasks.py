"""The task table: one record per task, and every place that used to keep its own per-task table reads it."""

from __future__ import annotations

import pytest

from convzoo import catalogue, registry, tasks, types

pytestmark = pytest.mark.unit


def test_every_task_has_one_record_that_agrees_with_the_entry_types():
    assert set(tasks.TASKS) == set(types.TASKS)
    for name, task in tasks.TASKS.items():
        assert task.name == name and task.output == types.OUTPUT_OF_TASK[name]
        assert task.pipeline_tag.startswith("image-") and task.ten_lines.endswith("\n")


def test_each_task_suggests_a_model_of_its_own_task_from_the_registry():
    for name, task in tasks.TASKS.items():
        assert registry.get(task.suggested).task == name


def test_the_shipped_models_report_their_task_headline(shipped_store):
    for stored in shipped_store.models():
        headline = tasks.get(stored.task).headline
        if headline is None or stored.name.endswith("-int8"):
            continue
        assert headline.key in stored.metrics, (stored.name, headline.key)
        assert catalogue.headline_metric(dict(stored.metrics))[0] == headline.label


def test_an_unknown_task_is_named_with_the_ones_there_are():
    with pytest.raises(KeyError, match="classification, segmentation, style"):
        tasks.get("detection")


def test_every_entry_names_a_data_set_with_a_record():
    from convzoo import datasets

    for entry in registry.entries():
        record = datasets.get(entry.dataset)
        assert record is datasets.DATASETS[entry.dataset] and record.title, entry.name
    assert {d.name for d in datasets.DATASETS.values() if d.local_test} == {"fashion-mnist", "isbi2012-em"}
    assert datasets.get("my-own-photos").title == "my-own-photos"  # a user's own set is named by itself
