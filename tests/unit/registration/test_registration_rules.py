"""A registration file can't reach outside its room (#14, item 3): every key has a type and
every identifier a pattern, paths stay under their roots, and a malformed file is refused with
one line naming the key, the type expected and the type found; never a traceback (property-
tested with generated TOML documents)."""
from __future__ import annotations

import os
import tempfile
import tomllib
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import registration
from base.errors import ConfigError
from tests.conftest import ROOT
from tests.regdocs import doc, to_toml

KINDS = ("sql", "http", "files")
WHERE = "r.toml"


def parse(d: dict):
    return registration.parse(tomllib.loads(to_toml(d)), WHERE)     # through real TOML text


def changed(kind: str, path: tuple, new) -> dict:
    d = doc(kind)
    put(d, path, new)
    return d


def put(d, path: tuple, new) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = new


def get(d, path: tuple):
    for k in path:
        d = d[k]
    return d


def one_line(exc: ConfigError) -> str:
    msg = str(exc)
    assert msg.splitlines() == [msg], msg
    assert msg.startswith(f"{WHERE}: "), msg
    return msg


@pytest.mark.parametrize("kind", KINDS)
def test_valid_documents_of_each_connector_kind_parse(kind):
    reg = parse(doc(kind))
    assert reg.id == "smr_business_licence" and reg.dataset == "business_licence.market_regulation"
    assert reg.gates == {"size_change": 0.3} and len(reg.checks) == 2


def test_every_demo_registration_stays_valid():
    for path in sorted((ROOT / "demo" / "registrations").glob("*.toml")):
        reg = registration.load(path)
        assert reg.dataset == f"{reg.certificate_type}.{reg.department}", path


# (connector kind, key path, value, what the one-line message must say)
REFUSED = [
    ("sql", ("id",), 5, "id must be a string, not an integer (5)"),
    ("sql", ("connector", "batch_rows"), "many", "connector.batch_rows must be an integer, not a string ('many')"),
    ("sql", ("department",), ["x"], "department must be a string, not an array (['x'])"),
    ("sql", ("mapping",), "x", "mapping must be a table of strings, not a string ('x')"),
    ("sql", ("dataset",), "../../../tmp/x", "dataset '../../../tmp/x' is not allowed"),
    ("sql", ("dataset",), "business_licence/x", "dataset 'business_licence/x' is not allowed"),
    ("sql", ("dataset",), "a.b.c", "dataset 'a.b.c' is not allowed"),
    ("sql", ("dataset",), "a" * 100 + "." + "b" * 40, "is not allowed"),
    ("sql", ("id",), "smr\n", "id 'smr\\n' is not allowed"),
    ("sql", ("id",), "../smr", "id '../smr' is not allowed"),
    ("sql", ("id",), "Smr", "id 'Smr' is not allowed"),
    ("sql", ("department",), "../x", "department '../x' is not allowed"),
    ("sql", ("department",), "market regulation", "department 'market regulation' is not allowed"),
    ("sql", ("certificate_type",), 1, "certificate_type must be a string, not an integer (1)"),
    ("sql", ("status_map", "存续"), 1, 'status_map."存续" must be a string, not an integer (1)'),
    ("sql", ("constants", "licence_name"), 5, "constants.licence_name must be a string, not an integer (5)"),
    ("sql", ("checks",), "x", "checks must be an array of tables, not a string ('x')"),
    ("sql", ("checks", 0), 5, "checks[1] must be a table, not an integer (5)"),
    ("sql", ("checks", 0, "column"), 5, "checks[1].column must be a string, not an integer (5)"),
    ("sql", ("checks", 1, "column_list"), "licence_number",
     "checks[2].column_list must be an array of strings, not a string ('licence_number')"),
    ("sql", ("checks", 0, "mostly"), 2.0, "checks[1].mostly must be between 0 and 1"),
    ("sql", ("checks", 0, "value"), "15", "checks[1].value must be an integer, not a string ('15')"),
    ("sql", ("gates",), 3, "gates must be a table, not an integer (3)"),
    ("sql", ("gates", "size_change"), "x", "gates.size_change must be a number, not a string ('x')"),
    ("sql", ("gates", "size_change"), float("inf"), "gates.size_change must be a number, not a float (inf)"),
    ("sql", ("schedule",), 5, "schedule must be a string, not an integer (5)"),
    ("sql", ("schedule",), "every day", "schedule 'every day' is not allowed"),
    ("sql", ("sharing",), 1, "sharing must be a string, not an integer (1)"),
    ("sql", ("update_cycle",), [], "update_cycle must be a string, not an array ([])"),
    ("sql", ("title",), "x" * 300, "title is 300 characters long; at most 255"),
    ("sql", ("steward",), date(2026, 1, 1), "steward must be a string, not a date (datetime.date(2026, 1, 1))"),
    ("sql", ("connector",), "sql", "connector must be a table, not a string ('sql')"),
    ("sql", ("connector", "kind"), 5, "connector.kind must be a string, not an integer (5)"),
    ("sql", ("connector", "adbc"), "yes", "connector.adbc must be a boolean, not a string ('yes')"),
    ("sql", ("connector", "batch_rows"), True, "connector.batch_rows must be an integer, not a boolean (True)"),
    ("sql", ("connector", "batch_rows"), 0, "connector.batch_rows must be between 1 and"),
    ("sql", ("connector", "table"), 7, "connector.table must be a string, not an integer (7)"),
    ("sql", ("connector", "url"), "sqlite:///../../catalog.db", "connector.url"),
    ("sql", ("connector", "url"), "sqlite:////etc/silo.db", "connector.url"),
    ("sql", ("connector", "url"), "sqlite://", "connector.url"),
    ("http", ("connector", "fields"), "ZCH", "connector.fields must be an array of strings, not a string ('ZCH')"),
    ("http", ("connector", "fields", 1), 5, "connector.fields[2] must be a string, not an integer (5)"),
    ("http", ("connector", "page_size"), -1, "connector.page_size must be between 1 and"),
    ("http", ("connector", "backoff"), "fast", "connector.backoff must be a number, not a string ('fast')"),
    ("http", ("connector", "params"), "a=b", "connector.params must be a table, not a string ('a=b')"),
    ("http", ("connector", "secret_env"), "EXCHANGE_KEY_PASSPHRASE", "connector.secret_env 'EXCHANGE_KEY_PASSPHRASE'"),
    ("http", ("connector", "secret_env"), "AIRFLOW_CONN_METADATA", "connector.secret_env 'AIRFLOW_CONN_METADATA'"),
    ("files", ("connector", "path"), "../elsewhere", "connector.path '../elsewhere'"),
    ("files", ("connector", "path"), "/etc", "connector.path '/etc'"),
    ("files", ("connector", "path"), 3, "connector.path must be a string, not an integer (3)"),
    ("files", ("connector", "pattern"), "../*.csv", "connector.pattern '../*.csv' is not allowed"),
    ("files", ("connector", "encoding"), "klingon", "connector.encoding 'klingon'"),
    ("files", ("connector", "delimiter"), ";;", "connector.delimiter ';;'"),
    ("files", ("connector", "settle_seconds"), "soon",
     "connector.settle_seconds must be a number, not a string ('soon')"),
    ("files", ("connector", "fields"), [1], "connector.fields[1] must be a string, not an integer (1)"),
]


@pytest.mark.parametrize("kind,path,new,says", REFUSED,
                         ids=[f"{k}:{'.'.join(map(str, p))}={v!r:.20}" for k, p, v, _ in REFUSED])
def test_malformed_keys_are_refused_in_one_line_naming_key_and_types(kind, path, new, says):
    with pytest.raises(ConfigError) as exc:
        parse(changed(kind, path, new))
    assert says in one_line(exc.value)


def test_a_missing_or_unknown_key_is_named():
    d = doc()
    del d["mapping"]
    with pytest.raises(ConfigError, match="missing keys \\['mapping'\\]"):
        parse(d)
    with pytest.raises(ConfigError, match="unknown field of business_licence 'x'") as exc:
        parse(changed("sql", ("mapping",), {"x": "ZCH"}))
    assert "mapping.x" in one_line(exc.value)


# --- paths stay under their roots ---------------------------------------------------------
@pytest.fixture
def roots(tmp_path, monkeypatch):
    from base.settings import reset_settings

    drops, silos = tmp_path / "drops", tmp_path / "silos"
    drops.mkdir()
    silos.mkdir()
    monkeypatch.setenv("EXCHANGE_SILO_ROOTS", os.pathsep.join([str(drops), str(silos)]))
    reset_settings()
    yield drops, silos
    reset_settings()


def test_a_relative_drop_is_taken_under_the_first_root_and_may_not_leave_it(roots, tmp_path):
    import connectors

    drops, silos = roots
    conn = connectors.build({"kind": "files", "path": "civil_affairs"}, "s")
    assert conn.drop == drops / "civil_affairs"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    for bad in ("../elsewhere", str(tmp_path / "elsewhere"), "civil_affairs/../../elsewhere", "/"):
        with pytest.raises(ConfigError, match="connector.path") as exc:
            connectors.build({"kind": "files", "path": bad}, "s")
        assert "EXCHANGE_SILO_ROOTS" in str(exc.value)
    assert connectors.build({"kind": "files", "path": str(silos / "x")}, "s").drop == silos / "x"


def test_a_symlink_inside_a_root_cannot_lead_out(roots, tmp_path):
    import connectors

    drops, _ = roots
    (tmp_path / "elsewhere").mkdir()
    (drops / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="connector.path"):
        connectors.build({"kind": "files", "path": "link"}, "s")


def test_sqlite_silos_are_files_under_the_roots(roots, tmp_path):
    import connectors

    drops, silos = roots
    conn = connectors.build({"kind": "sql", "url": "sqlite:///smr.db", "table": "t"}, "s")
    assert conn.url.database == str(drops / "smr.db")
    conn = connectors.build({"kind": "sql", "url": f"sqlite:///{silos / 'smr.db'}", "table": "t"}, "s")
    assert conn.url.database == str(silos / "smr.db")
    for bad in (f"sqlite:///{tmp_path / 'home' / 'catalog.db'}", "sqlite:///../catalog.db",
                "sqlite://", "sqlite:///:memory:", f"sqlite:///file:{silos / 'x.db'}?uri=true"):
        with pytest.raises(ConfigError, match="connector.url"):
            connectors.build({"kind": "sql", "url": bad, "table": "t"}, "s")


def test_a_sqlite_silo_from_an_airflow_connection_is_held_to_the_roots(roots, tmp_path, monkeypatch):
    from connectors.sql import SqlConnector
    from registration.connector import SqlSettings

    monkeypatch.setenv("AIRFLOW_CONN_SILO_OUTSIDE", f'{{"conn_type": "sqlite", "host": "{tmp_path / "x.db"}"}}')
    conn = SqlConnector(SqlSettings(table="t", conn_id="silo_outside"), "s")
    with pytest.raises(ConfigError, match="EXCHANGE_SILO_ROOTS"):
        _ = conn.url


# --- one bad file hides nothing else ------------------------------------------------------
def write(directory: Path, name: str, d: dict | str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(d if isinstance(d, str) else to_toml(d), encoding="utf-8")
    return path


def test_a_bad_file_is_skipped_and_reported_and_the_others_load(tmp_path, caplog):
    src = tmp_path / "sources"
    write(src, "good.toml", doc("files"))
    write(src, "typed.toml", {**doc(), "id": 5})
    write(src, "escape.toml", {**doc(), "id": "smr_escape", "dataset": "../../../tmp/x"})
    write(src, "broken.toml", 'id = "smr_broken"\nthis is not TOML')
    (src / "latin1.toml").write_bytes(b'id = "smr_latin"\ntitle = "\xe9"\n')
    scan = registration.scan(src)
    assert list(scan.registrations) == ["smr_business_licence"]
    problems = {Path(p.path).name: p for p in scan.problems}
    assert set(problems) == {"typed.toml", "escape.toml", "broken.toml", "latin1.toml"}
    assert "id must be a string, not an integer (5)" in problems["typed.toml"].reason
    assert problems["escape.toml"].source == "smr_escape" and "dataset" in problems["escape.toml"].reason
    assert problems["broken.toml"].source is None and "not valid TOML" in problems["broken.toml"].reason
    assert "UTF-8" in problems["latin1.toml"].reason
    assert all("\n" not in p.reason for p in scan.problems)
    with caplog.at_level("WARNING", logger="registration.files"):
        assert list(registration.load_all(src)) == ["smr_business_licence"]
    logged = [r.getMessage() for r in caplog.records if r.name == "registration.files"]
    assert len(logged) == 4 and all(m.startswith("registration file not loaded: ") for m in logged)
    assert any("typed.toml: id must be a string" in m for m in logged)
    assert registration.get("smr_business_licence", src).connector["kind"] == "files"
    with pytest.raises(ConfigError, match="dataset '../../../tmp/x' is not allowed"):
        registration.get("smr_escape", src)          # the broken file's own reason, not "unknown"


def test_two_files_with_one_id_are_both_refused_and_the_others_load(tmp_path):
    src = tmp_path / "sources"
    write(src, "a.toml", doc())
    write(src, "b.toml", doc("http"))
    write(src, "c.toml", {**doc("files"), "id": "smr_files"})
    scan = registration.scan(src)
    assert list(scan.registrations) == ["smr_files"]
    assert [(Path(p.path).name, p.source) for p in scan.problems] == [
        ("a.toml", "smr_business_licence"), ("b.toml", "smr_business_licence")]
    assert all("registered twice" in p.reason for p in scan.problems)
    with pytest.raises(ConfigError, match="registered twice"):
        registration.get("smr_business_licence", src)


# --- property tests: generated TOML documents ---------------------------------------------
def paths(d, prefix=()) -> list[tuple]:
    out = []
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else ()
    for k, v in items:
        out.append((*prefix, k))
        out += paths(v, (*prefix, k))
    return out


def category(v) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table", date: "date"}[type(v)]


SCALARS = st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.booleans(),
                    st.dates(min_value=date(1900, 1, 1)))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=6)
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", 300))        # more for a deeper search
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_a_value_of_another_type_is_refused_naming_its_key(kind, data):
    d = doc(kind)
    path = data.draw(st.sampled_from(paths(d)))
    old = get(d, path)
    new = data.draw(VALUES.filter(lambda v: category(v) != category(old)))
    put(d, path, new)
    try:
        parse(d)
    except ConfigError as exc:
        msg = one_line(exc)
        for part in path:
            assert str(part) in msg if isinstance(part, str) else True, (path, msg)
    else:   # only a whole number where any number will do
        assert (category(old), category(new)) == ("float", "integer"), (path, new)


@st.composite
def mutated(draw):
    """A valid document with up to four mutations: a key removed, an unknown key added, a
    value replaced by any TOML value or by a string (identifiers, paths, names)."""
    d = draw(st.sampled_from(KINDS).map(doc))
    for _ in range(draw(st.integers(1, 4))):
        tables = [()] + [p for p in paths(d) if isinstance(get(d, p), (dict, list)) and get(d, p)]
        at = draw(st.sampled_from(tables))
        target = get(d, at) if at else d
        how = draw(st.sampled_from(["remove", "add", "replace", "string"]))
        k = draw(st.sampled_from(list(target) if isinstance(target, dict) else range(len(target))))
        if how == "remove":
            del target[k]
        elif how == "add" and isinstance(target, dict):
            target[draw(st.text(max_size=10))] = draw(VALUES)
        elif how == "string":
            target[k] = draw(st.one_of(st.text(max_size=30), st.sampled_from(
                ["..", "../x", "/etc", "a.b.c", "x" * 300, "sqlite:///../x.db", "", " ", "\n", "a\u2028b", "\x85",
                 "business_licence", "market_regulation", "files", "http", "sql", "*", "@daily",
                 "0 0 * * *", "valid", "revoked", "licence_number", "holder_code"])))
        else:
            target[k] = draw(VALUES)
        if not d:
            break
    return d


@PROPERTY
@given(mutated())
def test_any_mutated_document_parses_or_is_refused_in_one_line(d):
    try:
        reg = parse(d)
    except ConfigError as exc:
        one_line(exc)
    else:
        assert registration.ID_RE.fullmatch(reg.id) and registration.DATASET_RE.fullmatch(reg.dataset)


@PROPERTY
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_corrupted_text_and_bytes_never_give_a_traceback(kind, data):
    text = to_toml(doc(kind)).encode("utf-8")
    at = data.draw(st.integers(0, len(text)))
    cut = data.draw(st.integers(0, 8))
    text = text[:at] + data.draw(st.binary(max_size=8)) + text[at + cut:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.toml"
        path.write_bytes(text)
        try:
            registration.load(path)
        except ConfigError as exc:
            msg = str(exc)
            assert msg.splitlines() == [msg] and msg.startswith(str(path)), msg


def test_the_generated_documents_are_what_tomllib_reads():
    for kind in KINDS:
        d = doc(kind)
        assert tomllib.loads(to_toml(d)) == d


def test_the_store_writes_nothing_outside_itself_whatever_name_it_is_handed(tmp_path):
    from base.errors import PublishError
    from catalog.publish.store import version_key

    assert version_key("business_licence.market_regulation", 3) == "store/business_licence.market_regulation/v000003"
    for bad in ("../../outside", "../store2", "a/b", "/etc", ".", "..", "a.b.c", "", "x\n"):
        with pytest.raises(PublishError, match="nothing was written"):
            version_key(bad, 1)


def test_a_run_key_never_leads_out_of_the_staging_folder(home):
    from exchange import stages

    assert stages.handoff_prefix("smr_x", "manual__2026-11-21T09_00_00_00_00") == \
        "staging/smr_x/manual__2026-11-21T09_00_00_00_00"
    assert stages.handoff("smr_x", stages.run_key("scheduled__2026-11-21T00:00:00+00:00"), "extracted") == \
        "staging/smr_x/scheduled__2026-11-21T00_00_00_00_00/extracted.arrow"
    for key in ("../../x", "..", ".", "a/b", "/tmp", "", "x" * 201):
        with pytest.raises(ConfigError, match="run key"):
            stages.handoff("smr_x", key, "extracted")
    with pytest.raises(ConfigError):
        stages.handoff_prefix("../smr", "r1")


def test_the_catalogues_texts_parse_as_files_do_and_a_bad_one_hides_no_other():
    """registration.scan_texts: the catalogue's stored TOML, (source id, text, origin) each."""
    good = (Path(__file__).parents[3] / "demo" / "registrations" / "smr_business_licence.toml").read_text("utf-8")
    found = registration.scan_texts([
        ("smr_business_licence", good, "/steward/smr.toml"),
        ("smr_old", good.replace('id = "smr_business_licence"', 'id = "smr_old"\nretired = 1'), None),
        ("smr_junk", "id = ", "/steward/junk.toml"),
        ("smr_twin", good, "/steward/twin.toml"),           # stored under another id than its text's
    ])
    reg = found.registrations["smr_business_licence"]
    assert list(found.registrations) == ["smr_business_licence"]
    assert (reg.path, reg.origin, reg.source_file) == (None, "/steward/smr.toml", "/steward/smr.toml")
    assert "origin" not in reg.as_dict()
    why = {p.source: p for p in found.problems}
    assert why["smr_old"].path == "registration smr_old in the catalogue"
    assert why["smr_old"].reason.startswith("registration smr_old in the catalogue: unknown keys ['retired']")
    assert why["smr_junk"].path == "/steward/junk.toml" and "not valid TOML" in why["smr_junk"].reason
    assert "registers 'smr_business_licence', not 'smr_twin'" in why["smr_twin"].reason
    assert all("\n" not in p.reason for p in found.problems)
