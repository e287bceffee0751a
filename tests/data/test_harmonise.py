"""Label harmonisation on real label names: ChestX-ray14 findings, cxr3's classes, a user's map and its typos."""

from __future__ import annotations

import pandas as pd
import pytest

from medtune.config import load_config
from medtune.data.harmonise import SYNONYMS, canonical_label, harmonise_labels, read_label_map
from medtune.data.table import create_table
from medtune.errors import ConfigError
from medtune.runs import read_dataset_table
from medtune.tasks.classify import match_labels
from tests.conftest import shared_path

#: TorchXRayVision's 18 harmonised pathologies, spelt as the datasets spell them.
XRV = ("Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis", "Effusion",
       "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia", "Lung Lesion", "Fracture",
       "Lung Opacity", "Enlarged Cardiomediastinum")  # fmt: skip


def test_the_18_pathologies_and_every_chestxray14_finding_have_a_canonical_name():
    assert len({canonical_label(name) for name in XRV}) == 18 and None not in {canonical_label(n) for n in XRV}
    findings = pd.read_csv(shared_path("cxr3", "labels.csv"))["finding_labels"].dropna().str.split("|").explode()
    for name in set(findings):
        assert canonical_label(name) is not None, name
    assert canonical_label("No Finding") == canonical_label("normal") == "normal"
    assert canonical_label("COVID-19") == canonical_label("covid") == "covid"
    assert canonical_label("pleural thickening") == canonical_label("Pleural_Thickening")
    assert len(SYNONYMS) == 20


def test_a_map_comes_first_drops_with_null_and_unknown_labels_are_listed(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("Viral pneumonia: pneumonia\nTuberculosis: null\n")
    mapping, unmatched = harmonise_labels(["No Finding", "Viral pneumonia", "Tuberculosis", "Sarcoidosis"],
                                          read_label_map(path))  # fmt: skip
    assert mapping == {"No Finding": "normal", "Viral pneumonia": "pneumonia", "Tuberculosis": None,
                       "Sarcoidosis": "sarcoidosis"}  # fmt: skip
    assert unmatched == ["Sarcoidosis"]


def test_a_typo_in_the_map_is_named_with_the_closest_label(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("Pnuemonia: pneumonia\n")
    config = load_config(data=str(shared_path("cxr3", "labels.csv")), label="label", label_map=str(path))
    with pytest.raises(ConfigError, match=r"'pnuemonia' is no label of .*pneumonia"):
        read_dataset_table(config)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must map names to names"):
        read_label_map(path)


def test_rows_are_chosen_by_class_and_domain():
    config = load_config(data=str(shared_path("cxr3", "labels.csv")), label="label", domain="view", domains="AP",
                         harmonise=True, keep_classes="normal,pneumonia")  # fmt: skip
    table = read_dataset_table(config)
    assert table.classes == ("normal", "pneumonia") and len(table) == 342 + 225
    assert set(table.frame["domain"]) == {"AP"}


def test_evaluate_matches_labels_through_the_synonyms():
    frame = pd.DataFrame({"path": ["a.png", "b.png", "c.png"], "label": ["No Finding", "Pneumonia", "Tuberculosis"]})
    table = create_table(frame, ["No Finding", "Pneumonia", "Tuberculosis"])
    targets, unmatched = match_labels(table, ("normal", "pneumonia"))
    assert list(targets) == [0, 1, -1] and unmatched == {"Tuberculosis": 1}


def test_multilabel_findings_meet_single_labels():
    """ChestX-ray14's finding strings read as normal / pneumonia: no finding is normal, a pneumonia is pneumonia
    whatever else the image shows, and images with other findings only are left out."""
    config = load_config(data=str(shared_path("cxr3", "labels.csv")), labels="finding_labels", label_sep="|",
                         harmonise=True, keep_classes="normal,pneumonia")  # fmt: skip
    table = read_dataset_table(config)
    assert not table.multilabel and table.classes == ("normal", "pneumonia")
    counts = table.frame["label"].value_counts()
    assert counts["normal"] == 500 and counts["pneumonia"] == 500  # cxr3's own single labels, recovered
    assert any("no finding is normal" in note for note in table.notes)
