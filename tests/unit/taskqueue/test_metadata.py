"""The project's version as its checkout states it, and the metadata written for it (pure)."""

import importlib.metadata

from coditect.taskqueue.metadata import project_version, write_metadata


def version_of(files: dict[str, str]) -> str:
    return project_version(files, files.__getitem__)


def test_the_version_comes_from_the_static_metadata_then_setup_cfg_then_pkg_info():
    pkg_info = "Metadata-Version: 2.1\nName: thing\nVersion: 4.9.0\n"
    assert version_of({"pyproject.toml": '[project]\nversion = "1.0"\n', "PKG-INFO": pkg_info}) == (
        "1.0"
    )
    dynamic = '[project]\nname = "thing"\ndynamic = ["version"]\n'
    assert version_of({"pyproject.toml": dynamic, "PKG-INFO": pkg_info}) == "4.9.0"
    assert version_of({"setup.cfg": "[metadata]\nversion = 2.5\n"}) == "2.5"
    assert version_of({"setup.cfg": "[metadata]\nversion = attr: thing.__version__\n"}) == "0"
    assert version_of({"setup.cfg": "[metadata\nbroken"}) == "0"
    assert version_of({"pyproject.toml": "[project\nbroken"}) == "0"
    assert version_of({}) == "0"


def test_what_is_written_is_what_importlib_metadata_reads(tmp_path):
    info = write_metadata(tmp_path, "Some.Thing", "1.0+local/x")
    assert info.name == "some_thing-1.0+local_x.dist-info"
    dist = importlib.metadata.PathDistribution(info)
    assert dist.metadata["Name"] == "Some.Thing" and dist.version == "1.0+local/x"
    # written again (a new task, another version): the old one is gone
    again = write_metadata(tmp_path, "Some.Thing", "2.0")
    assert not info.exists() and again.is_dir()
    found = list(importlib.metadata.distributions(path=[str(again.parent)]))
    assert [d.version for d in found] == ["2.0"]
