"""Compatibility API settings: `CHANNELMODEL_COMPAT_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from channelmodel.api.models import K8S_NAME_PATTERN


class CompatTokenMissing(ValueError):
    """No bearer token configured: the API would accept nobody, so it refuses to start."""


class CompatSettings(BaseSettings):
    """Off by default; when on, every request needs the bearer token."""

    model_config = SettingsConfigDict(
        env_prefix="CHANNELMODEL_COMPAT_", extra="ignore", frozen=True
    )

    enabled: bool = Field(
        default=False, description="Mount POST /v1/train and GET /v1/jobs/<id> in the model server."
    )
    token: SecretStr | None = Field(default=None, description="Bearer token the backend must send.")
    token_file: Path | None = Field(
        default=None,
        description="File holding the bearer token (a mounted Secret); read on every request.",
    )
    namespace: str = Field(
        default="default",
        description="Namespace of the ChannelModels the API finds and creates.",
        pattern=K8S_NAME_PATTERN,
    )
    create: bool = Field(
        default=False,
        description="Create a ChannelModel for an unknown channel instead of answering 404.",
    )
    mode: Literal["event", "manual"] = Field(
        default="event",
        description="event: a catalog change (debounce, cooldown, cap apply); "
        "manual: a retrain request (skips debounce and cooldown, not the cap).",
    )

    def bearer_token(self) -> str:
        """The expected token; the file wins so a rotated Secret takes effect at once."""
        if self.token_file is not None:
            try:
                value = self.token_file.read_text().strip()
            except OSError as exc:
                raise CompatTokenMissing(
                    f"cannot read CHANNELMODEL_COMPAT_TOKEN_FILE: {exc.strerror}"
                ) from None
        else:
            value = self.token.get_secret_value().strip() if self.token else ""
        if not value:
            raise CompatTokenMissing(
                "the compatibility API needs CHANNELMODEL_COMPAT_TOKEN or CHANNELMODEL_COMPAT_TOKEN_FILE"
            )
        return value
