"""PACS addresses, the cache and the floor of medpipe.sources, without a server (the servers are in
test_sources_pacs.py and test_sources_badpeers.py)."""
from __future__ import annotations

import pytest

from medpipe.errors import InputError
from medpipe.sources import is_address
from medpipe.sources.address import parse_address
from medpipe.sources.cache import SeriesCache
from medpipe.sources.settings import source_settings
from test_architecture import floor, imports, modules

UID = "1.2.840.113619.2.1"


def test_dicomweb_address_parts():
    a = parse_address(f"http://pacs.example:8042/dicom-web/studies/{UID}/series/1.2.3?Modality=CT")
    assert (a.scheme, a.host, a.port, a.root, a.study, a.series) == ("http", "pacs.example", 8042, "/dicom-web",
                                                                      UID, "1.2.3")
    assert a.query == (("Modality", "CT"),) and not a.dimse
    assert a.base_url == "http://pacs.example:8042/dicom-web"
    assert parse_address("https://h/wado/rs").port == 443
    q = parse_address("http://h:1/dicom-web?ModalitiesInStudy=CT&StudyDate=20200101-20211231&00100020=P1").query
    assert q == (("ModalitiesInStudy", "CT"), ("StudyDate", "20200101-20211231"), ("PatientID", "P1"))


def test_dimse_address_parts():
    a = parse_address(f"dicom://ORTHANC@127.0.0.1:4242/studies/{UID}")
    assert (a.aet, a.host, a.port, a.study, a.series, a.dimse) == ("ORTHANC", "127.0.0.1", 4242, UID, None, True)
    assert a.label == f"dicom://ORTHANC@127.0.0.1:4242/studies/{UID}"


@pytest.mark.parametrize("text, why", [
    ("http://:8042/dicom-web", "no host"),
    ("http://h:99999/dicom-web", "Port out of range"),
    ("http://h:1/dicom-web/studies/", "/studies/UID"),
    ("http://h:1/dicom-web/studies/1.2/instances/3", "/studies/UID"),
    ("http://h:1/dicom-web/studies/abc", "not a DICOM UID"),
    ("http://h:1/dicom-web?NoSuchKey=1", "not a DICOM keyword"),
    ("http://h:1/r?Modality=CT&Modality=MR", "given twice"),
    ("dicom://127.0.0.1:104", "AE title"),
    ("dicom://ABCDEFGHIJKLMNOPQRS@h:104", "AE title"),
    ("dicom://A@h:104/dicom-web/studies/1.2", "no service root"),
    ("ftp://h/x", "not a PACS address"),
])
def test_malformed_addresses_are_one_line(text, why):
    with pytest.raises(InputError) as exc:
        parse_address(text)
    msg = str(exc.value)
    assert why in msg and "\n" not in msg and "not a PACS address" in msg


def test_credentials_in_an_address_are_refused_and_never_echoed():
    with pytest.raises(InputError) as exc:
        parse_address("https://alice:s3cret-pw@pacs.example/dicom-web")
    assert "s3cret-pw" not in str(exc.value) and "alice" not in str(exc.value)
    assert "MEDPIPE_PACS_USER" in str(exc.value)


def test_is_address():
    assert is_address("http://h/x") and is_address("HTTPS://h") and is_address(" dicom://A@h:1")
    assert not is_address("samples/ct") and not is_address("C:\\data") and not is_address(None)


def test_settings_are_checked_like_a_preset_section():
    s = source_settings({"aet": "ME", "requests": 2})
    assert (s.aet, s.requests, s.port, s.insecure) == ("ME", 2, 11112, False)
    from medpipe.errors import PresetError

    with pytest.raises(PresetError, match="requests"):
        source_settings({"requests": 0})
    with pytest.raises(PresetError, match="did you mean"):
        source_settings({"aetitle": "X"})


def test_cache_checks_content_by_hash(tmp_path):
    cache = SeriesCache(tmp_path / "s")
    assert cache.get("1.2.3") is None
    path = cache.put("1.2.3", b"abc" * 100)
    assert cache.get("1.2.3") == path
    path.write_bytes(b"abc" * 99)  # truncated, as by a killed run or a full disk
    assert cache.get("1.2.3") is None
    cache.put("1.2.4", b"x")
    cache.prune({"1.2.4"})
    assert not path.exists() and cache.get("1.2.4")


def test_sources_import_only_the_foundations():
    """Sources sit below the readers: they import floor-0 modules only (no reader, codec, DICOM writer)."""
    known = modules()
    bad = {name: sorted(t for t in imports(name, path, known) if not t.startswith("medpipe.sources")
                        and floor(t) > 0)
           for name, path in known.items() if name.startswith("medpipe.sources")}
    assert not any(bad.values()), bad
    assert "medpipe.sources.dicomweb" in known


def test_a_preset_keeps_addresses_as_given_and_checks_its_pacs_key(tmp_path):
    from medpipe.errors import PresetError
    from medpipe.preset import parse_preset

    data = {"inputs": ["dicom://ORTHANC@127.0.0.1:4242/studies/1.2.3", "series"], "pacs": {"aet": "ME"},
            "codecs": [{"codec": "jpegls"}]}
    preset = parse_preset(data, path=tmp_path / "p.yaml")
    assert preset.inputs == ("dicom://ORTHANC@127.0.0.1:4242/studies/1.2.3", tmp_path / "series")
    assert preset.input_options["pacs"] == {"aet": "ME"}
    with pytest.raises(PresetError, match="pacs"):
        parse_preset({**data, "pacs": {"requests": 100}}, path=tmp_path / "p.yaml")
