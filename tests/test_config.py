"""Config loading: the sample works, and every mistake is reported by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from homeserver.config import (
    Config,
    ConfigError,
    check_config,
    default_config_path,
    load_config,
)

SAMPLE = Path(__file__).resolve().parent.parent / "config.sample.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return caught.value.problems


def model_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        name = field.alias or name
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(model_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def yaml_keys(data: dict[str, object], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, value in data.items():
        if isinstance(value, dict) and value:  # an empty mapping ({}) is a value
            keys.extend(yaml_keys(value, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


# --- the sample -------------------------------------------------------------


def test_sample_config_loads_to_the_defaults() -> None:
    assert load_config(SAMPLE, {}) == Config()


def test_sample_config_shows_every_key_and_nothing_else() -> None:
    sample = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    assert sorted(yaml_keys(sample)) == sorted(model_keys(Config))


def test_sample_config_comments_every_key() -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, _, value = stripped.partition(":")
        if value.strip() == "" and not line.startswith(" "):
            continue  # a section header
        assert lines[number - 1].strip().startswith("#"), f"{key} has no comment"
        assert "Default:" in "\n".join(
            prev for prev in lines[max(0, number - 8) : number] if prev.strip().startswith("#")
        ), f"{key} does not state its default"


def test_check_config_finds_nothing_wrong_with_the_sample() -> None:
    assert check_config(SAMPLE, {}) == []


# --- defaults ---------------------------------------------------------------


def test_empty_file_gives_all_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), {}) == Config()
    assert load_config(write(tmp_path, "# only a comment\n"), {}) == Config()


def test_no_file_gives_all_defaults() -> None:
    config = load_config(None, {})
    assert config.server_name == "localhost"
    assert config.listen.port == 8008
    assert config.database.dsn == ""
    assert config.media.max_upload_bytes == 50 * 1024 * 1024


def test_section_with_every_key_commented_out_gives_its_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "redis:\n  # url: redis://x\nlisten:\n"), {})
    assert config.redis.url == ""
    assert config.listen.port == 8008


def test_signing_key_and_media_live_under_data_dir_by_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "data_dir: /srv/linkchat\n"), {})
    assert config.effective_signing_key_path == Path("/srv/linkchat/signing.key")
    assert config.effective_media_store_path == Path("/srv/linkchat/media")
    assert config.embedded_postgres_dir == Path("/srv/linkchat/postgres")


def test_explicit_signing_key_and_media_paths_are_used(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "signing_key_path: keys/k.key\nmedia:\n  store_path: /var/media\n"), {}
    )
    assert config.effective_signing_key_path == Path("keys/k.key")
    assert config.effective_media_store_path == Path("/var/media")


def test_relative_paths_stay_relative_to_working_directory(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "data_dir: state\n"), {})
    assert config.data_dir == Path("state")


def test_default_config_path_prefers_config_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_config_path() == Path("config.sample.yaml")
    (tmp_path / "config.yaml").write_text("", encoding="utf-8")
    assert default_config_path() == Path("config.yaml")


# --- mistakes in the file ---------------------------------------------------


def test_unknown_key_is_refused_naming_its_dotted_path(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  prot: 8009\n")
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: listen.prot: unknown key")
    assert "did you mean 'port'" in problems[0]


def test_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "server_nmae: example.com\n")
    assert problems_of(path)[0].startswith(f"{path}: server_nmae: unknown key")


def test_port_out_of_range_is_reported_with_its_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  port: 70000\n")
    assert problems_of(path) == [f"{path}: listen.port: must be at most 65535"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "listen:\n  port: 0\n  prot: 1\n"
        "database:\n  pool_min_size: 5\n  pool_max_size: 3\n"
        "logging:\n  format: xml\n"
        "rate_limits:\n  message: {per_second: -1}\n",
    )
    problems = problems_of(path)
    assert problems == [
        f"{path}: listen.port: must be at least 1",
        f"{path}: listen.prot: unknown key (did you mean 'port'?)",
        f"{path}: database.pool_max_size: must be at least database.pool_min_size (5)",
        f"{path}: rate_limits.message.per_second: must be greater than 0",
        f"{path}: logging.format: must be 'json' or 'text'",
    ]
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert str(caught.value) == "\n".join(problems)


def test_rate_limits_are_on_by_default_with_synapse_like_limits() -> None:
    limits = load_config(None, {}).rate_limits
    assert limits.enabled is True
    assert (limits.message.per_second, limits.message.burst) == (0.2, 10)
    assert (limits.failed_login.per_second, limits.failed_login.burst) == (0.17, 3)
    assert (limits.registration.per_second, limits.registration.burst) == (0.17, 3)


def test_rate_limit_class_given_in_part_keeps_its_own_other_default(tmp_path: Path) -> None:
    path = write(tmp_path, "rate_limits:\n  join: {burst: 50}\n  invite:\n")
    limits = load_config(path, {}).rate_limits
    assert (limits.join.per_second, limits.join.burst) == (0.1, 50)
    assert (limits.invite.per_second, limits.invite.burst) == (0.3, 10)


def test_old_flat_rate_limit_keys_are_refused_naming_the_per_action_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "rate_limits:\n  enabled: true\n  per_second: 10.0\n  burst: 50\n")
    problems = problems_of(path)
    assert [problem.split(": no longer used")[0] for problem in problems] == [
        f"{path}: rate_limits.per_second",
        f"{path}: rate_limits.burst",
    ]
    assert "rate_limits.message" in problems[0]
    [problem] = problems_of(None, {"HOMESERVER_RATE_LIMITS_PER_SECOND": "2"})
    assert problem.startswith("HOMESERVER_RATE_LIMITS_PER_SECOND: rate_limits.per_second: no")


def test_unknown_rate_limit_class_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "rate_limits:\n  mesage: {per_second: 1, burst: 1}\n")
    assert problems_of(path) == [
        f"{path}: rate_limits.mesage: unknown key (did you mean 'message'?)"
    ]


def test_environment_sets_a_whole_rate_limit_class_as_yaml() -> None:
    environ = {"HOMESERVER_RATE_LIMITS_REPORT": "{per_second: 3}"}
    limits = load_config(None, environ).rate_limits
    assert (limits.report.per_second, limits.report.burst) == (3.0, 5)


def test_trusted_proxy_that_is_not_an_address_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'listen:\n  trusted_proxies: ["10.0.0.0/8", "proxy.local"]\n')
    assert problems_of(path) == [
        f"{path}: listen.trusted_proxies: 'proxy.local' is not an IP address or network"
        " like 10.0.0.0/8"
    ]


def test_quoted_number_is_refused_not_coerced(tmp_path: Path) -> None:
    path = write(tmp_path, 'listen:\n  port: "8009"\n')
    assert problems_of(path) == [f"{path}: listen.port: must be an integer"]


def test_metrics_are_off_by_default_and_refused_on_the_client_port(tmp_path: Path) -> None:
    assert load_config(None, {}).metrics.enabled is False
    path = write(tmp_path, "listen:\n  port: 8008\nmetrics:\n  enabled: true\n  port: 8008\n")
    assert problems_of(path) == [
        f"{path}: metrics: port 8008 is listen.port; metrics need a listener of their own"
    ]
    other_host = "listen:\n  host: 10.0.0.5\nmetrics:\n  enabled: true\n  port: 8008\n"
    assert load_config(write(tmp_path, other_host), {}).metrics.port == 8008


def test_wrongly_typed_values_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "registration:\n  enabled: maybe\npresence: 5\n")
    assert problems_of(path) == [
        f"{path}: registration.enabled: must be true or false",
        f"{path}: presence: must be a mapping of keys to values",
    ]


def test_non_mapping_yaml_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "- listen\n- port\n")
    assert problems_of(path) == [
        f"{path}: the top level must be a mapping of keys to values, not a list"
    ]


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  port: [8008\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: invalid YAML: ")
    assert "line" in problem


def test_missing_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: cannot read file")


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  port: 8008\n  port: 8009\n")
    assert problems_of(path) == [f"{path}: listen.port: duplicate key (again on line 3)"]


@pytest.mark.parametrize(
    "server_name",
    ["localhost", "example.com", "chat.example.com:8448", "127.0.0.1:8008", "[::1]:8448"],
)
def test_valid_server_names_are_accepted(tmp_path: Path, server_name: str) -> None:
    config = load_config(write(tmp_path, f"server_name: '{server_name}'\n"), {})
    assert config.server_name == server_name


@pytest.mark.parametrize(
    "server_name",
    ["", "@example.com", "example.com:", "example.com:99999", "exa mple.com", "a:b:c", "[nope]"],
)
def test_bad_server_names_are_refused(tmp_path: Path, server_name: str) -> None:
    path = write(tmp_path, f"server_name: '{server_name}'\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: server_name: ")


@pytest.mark.parametrize(
    "admin", ["alice", "@alice", "@:localhost", "@Alice:localhost", "@alice:elsewhere.org"]
)
def test_bad_admin_user_id_is_refused(tmp_path: Path, admin: str) -> None:
    path = write(tmp_path, f"admins: ['@ok:localhost', '{admin}']\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: admins: ")
    assert repr(admin) in problem


def test_admins_on_this_server_are_accepted(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "server_name: example.com\nadmins: ['@alice:example.com']\n"), {}
    )
    assert config.admins == ["@alice:example.com"]


def test_bad_dsn_and_redis_url_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  dsn: mysql://db\nredis:\n  url: http://r\n")
    problems = problems_of(path)
    assert [p.split(": ")[1] for p in problems] == ["database.dsn", "redis.url"]


def test_public_baseurl_must_be_http_and_loses_trailing_slash(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "public_baseurl: https://chat.example.com/\n"), {})
    assert config.public_baseurl == "https://chat.example.com"
    path = write(tmp_path, "public_baseurl: chat.example.com\n")
    assert problems_of(path)[0].startswith(f"{path}: public_baseurl: ")


def test_empty_data_dir_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "data_dir: ''\n")
    assert problems_of(path)[0].startswith(f"{path}: data_dir: must not be empty")


def test_log_level_is_accepted_in_any_case(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "logging:\n  level: debug\n"), {}).logging.level == "DEBUG"


def test_config_cannot_be_changed_after_loading() -> None:
    config = load_config(None, {})
    with pytest.raises(ValueError):
        config.listen.port = 1  # type: ignore[misc]


# --- environment overrides --------------------------------------------------


def test_environment_overrides_nested_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  port: 8008\n  host: 0.0.0.0\n")
    config = load_config(
        path,
        {
            "HOMESERVER_LISTEN_PORT": "8009",
            "HOMESERVER_RATE_LIMITS_MESSAGE_PER_SECOND": "2.5",
            "HOMESERVER_RATE_LIMITS_ENABLED": "false",
            "HOMESERVER_MEDIA_MAX_UPLOAD_BYTES": "1024",
            "HOMESERVER_DATABASE_DSN": "postgresql://u@db/linkchat",
            "HOMESERVER_REGISTRATION_ENABLED": "false",
        },
    )
    assert config.listen.port == 8009
    assert config.listen.host == "0.0.0.0"  # the rest of the section is kept
    assert config.rate_limits.message.per_second == 2.5
    assert config.rate_limits.message.burst == 10  # the rest of the class is kept
    assert config.rate_limits.enabled is False
    assert config.media.max_upload_bytes == 1024
    assert config.database.dsn == "postgresql://u@db/linkchat"
    assert config.registration.enabled is False


def test_environment_overrides_top_level_keys(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "server_name: example.com\n"),
        {"HOMESERVER_SERVER_NAME": "chat.example.org", "HOMESERVER_DATA_DIR": "/srv/data"},
    )
    assert config.server_name == "chat.example.org"
    assert config.data_dir == Path("/srv/data")
    assert config.effective_signing_key_path == Path("/srv/data/signing.key")


def test_environment_text_values_are_taken_verbatim() -> None:
    config = load_config(None, {"HOMESERVER_SERVER_NAME": "1234", "HOMESERVER_REDIS_URL": ""})
    assert config.server_name == "1234"
    assert config.redis.url == ""


def test_environment_sets_admins_as_a_list() -> None:
    environ = {"HOMESERVER_ADMINS": "@a:localhost, @b:localhost"}
    assert load_config(None, environ).admins == ["@a:localhost", "@b:localhost"]
    environ = {"HOMESERVER_ADMINS": '["@a:localhost"]'}
    assert load_config(None, environ).admins == ["@a:localhost"]


def test_empty_environment_path_restores_default_under_data_dir(tmp_path: Path) -> None:
    path = write(tmp_path, "media:\n  store_path: /elsewhere\n")
    config = load_config(path, {"HOMESERVER_MEDIA_STORE_PATH": ""})
    assert config.effective_media_store_path == Path("data/media")


def test_environment_with_unknown_section_is_refused() -> None:
    problems = problems_of(None, {"HOMESERVER_LISTENS_PORT": "8009"})
    assert problems == [
        "HOMESERVER_LISTENS_PORT: unknown setting 'listens_port' "
        "(did you mean HOMESERVER_LISTEN_PORT?)"
    ]


def test_environment_with_unknown_key_is_refused() -> None:
    problems = problems_of(None, {"HOMESERVER_LISTEN_PROT": "8009"})
    assert problems == ["HOMESERVER_LISTEN_PROT: listen.prot: unknown key (did you mean 'port'?)"]


def test_environment_naming_a_whole_section_is_refused() -> None:
    [problem] = problems_of(None, {"HOMESERVER_LISTEN": "8009"})
    assert problem.startswith("HOMESERVER_LISTEN: listen is a section")


def test_environment_values_are_validated_and_blamed_on_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  prot: 1\n")
    problems = problems_of(
        path,
        {"HOMESERVER_LISTEN_PORT": "70000", "HOMESERVER_RATE_LIMITS_JOIN_BURST": "lots"},
    )
    assert problems == [
        "HOMESERVER_LISTEN_PORT: listen.port: must be at most 65535",
        f"{path}: listen.prot: unknown key (did you mean 'port'?)",
        "HOMESERVER_RATE_LIMITS_JOIN_BURST: rate_limits.join.burst: must be an integer",
    ]


def test_other_environment_variables_are_ignored() -> None:
    config = load_config(None, {"PATH": "/bin", "HOME": "/root", "homeserver_listen_port": "1"})
    assert config == Config()


def test_test_suite_database_variable_is_not_a_config_override() -> None:
    from homeserver.config import load_config

    config = load_config(None, {"HOMESERVER_TEST_DSN": "postgresql://elsewhere/db"})
    assert config.database.dsn == ""
