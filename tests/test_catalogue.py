"""One catalogue: `convzoo list`, the Models tab and `/v1/models` show the same row for each model."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from convzoo import catalogue, registry
from convzoo.demos import models_tab
from convzoo.registry import Store
from convzoo.serving import create_app
from convzoo.serving.background import running


@pytest.fixture
def store(tmp_path) -> Store:
    root = tmp_path / "store"
    root.mkdir()
    for name in ("lenet5-fashion", "unet-membranes", "vgg16-fashion"):
        shutil.copytree(registry.shipped_store() / name, root / name)
    (root / "vgg16-fashion" / "model.json").write_text("[]")
    return Store(root)


def test_rows_join_the_registry_with_the_store(store):
    rows = {row.name: row for row in catalogue.rows(store)}
    assert set(rows) == set(registry.names())
    measured = f"{store.get('lenet5-fashion').metrics['accuracy']:.4f}"  # the copied manifest's, as a user's
    assert rows["lenet5-fashion"].state == "stored" and rows["lenet5-fashion"].cells()[5] == measured
    assert rows["unet-membranes"].cells()[5].startswith("pixel error ")
    assert rows["vgg16-fashion"].state == "broken" and "must be a JSON object" in rows["vgg16-fashion"].reason
    assert rows["resnet18-fashion"].state == "not in store" and rows["resnet18-fashion"].cells()[-1] == "no"
    assert [r.stored for r in catalogue.rows(store)] == sorted((r.stored for r in rows.values()), reverse=True)


def test_formatters():
    assert catalogue.human_size(253_184) == "247.2 KiB" and catalogue.human_size(None) == "-"
    assert catalogue.count(61_706) == "61.71K" and catalogue.count(None) == "-"
    assert catalogue.headline_metric({"dice": 0.9, "pixel_error": 0.07}) == ("pixel error", 0.07)
    assert catalogue.headline_metric({}) is None


def test_cli_models_tab_and_service_show_the_same_rows(store, capsys):
    from convzoo.cli import main

    tab_rows = {row[0]: row for row in models_tab.rows(store)}
    shown = [catalogue.COLUMNS.index(column) for column in models_tab.COLUMNS]  # the tab leaves some out to fit
    assert tab_rows == {row.name: [row.cells()[i] for i in shown] for row in catalogue.rows(store)}
    main(["list", "--store", str(store.roots[0])])
    printed = capsys.readouterr().out
    for name in ("lenet5-fashion", "unet-membranes"):
        assert all(cell in printed for cell in tab_rows[name] if cell != "-"), tab_rows[name]
    app = create_app(store, models=["lenet5-fashion", "unet-membranes", "vgg16-fashion"], load_in_background=False)
    with running(app, ready=False) as url:
        served = {m["name"]: m for m in httpx.get(f"{url}/v1/models").json()["models"]}
    expected = catalogue.row("lenet5-fashion", store.get("lenet5-fashion")).to_json()
    assert {k: served["lenet5-fashion"][k] for k in expected} == json.loads(json.dumps(expected))
    assert served["vgg16-fashion"]["in_store"] == "broken" and not served["vgg16-fashion"]["ready"]
