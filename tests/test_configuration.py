"""A configuration the server cannot use is refused with the variable and the expected form,
and nothing else: no value from the environment, secrets least of all."""

from __future__ import annotations

import subprocess

import pytest

from api.settings import ConfigurationError, load_settings
from tests.servers import SWITCHBOARD, clean_env

SECRETS = {
    "OPENAI_API_KEY": "sk-test-very-secret-4242",
    "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0",
}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"SWITCHBOARD_ENV": "production", "SWITCHBOARD_JWT_SECRET": "short-but-secret"},
            "SWITCHBOARD_JWT_SECRET must be at least 32 characters in production",
        ),
        (
            {"SWITCHBOARD_ENV": "production"},
            "SWITCHBOARD_JWT_SECRET must be set to a secret of your own in production",
        ),
        (
            {"SWITCHBOARD_CORS_ORIGINS": "https://app.example.org"},
            'SWITCHBOARD_CORS_ORIGINS must be a JSON list, e.g. ["https://app.example.com"]',
        ),
        (
            {"SWITCHBOARD_CORS_ORIGINS": '["*"]'},
            "SWITCHBOARD_CORS_ORIGINS cannot be '*': list the origins",
        ),
        (
            {"SWITCHBOARD_ENV": "staging", "SWITCHBOARD_POOL_MAX_SIZE": "lots"},
            "SWITCHBOARD_ENV: Input should be 'development' or 'production'; "
            "SWITCHBOARD_POOL_MAX_SIZE: Input should be a valid integer, unable to parse string "
            "as an integer",
        ),
        (
            {"SWITCHBOARD_STREAM_TOKEN_TTL_SECONDS": "1"},
            "SWITCHBOARD_STREAM_TOKEN_TTL_SECONDS: Input should be greater than or equal to 5",
        ),
    ],
)
def test_a_bad_value_names_its_variable_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in {**SECRETS, **env}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert str(refused.value) == expected
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_the_command_prints_no_secret() -> None:
    # The case a user hit: production with a key set and the default secret.
    env = clean_env(SWITCHBOARD_ENV="production", SWITCHBOARD_JWT_SECRET="x" * 8, **SECRETS)
    for command in (["serve", "--port", "1"], ["worker"], ["db", "upgrade"]):
        done = subprocess.run(
            [SWITCHBOARD, *command], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert done.stderr == (
            "error: invalid configuration: "
            "SWITCHBOARD_JWT_SECRET must be at least 32 characters in production\n"
        )
