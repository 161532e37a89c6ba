"""Model server settings: `CHANNELMODEL_*` environment variables, overridden by flags."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServerSettings(BaseSettings):
    """What `channelmodel serve` needs: where the artifacts are and who may fetch them."""

    model_config = SettingsConfigDict(env_prefix="CHANNELMODEL_", extra="ignore", frozen=True)

    store_uri: str = Field(
        default="file:///var/lib/channelmodel/models",
        description="Artifact store: file:///path (shared volume) or s3://bucket/prefix.",
        pattern=r"^(file|s3)://",
    )
    server_host: str = Field(default="0.0.0.0", description="Address to listen on.", min_length=1)
    server_port: int = Field(
        default=8080, ge=0, le=65535, description="Port to listen on (0: any free port)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description="Origins allowed to fetch models cross-origin, comma-separated; '*' allows any.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text for people, json lines for log pipelines."
    )
    public_base_url: str | None = Field(
        default=None,
        description="Public URL of this server; latest.json then carries absolute URLs, else root-relative ones.",
        pattern=r"^https?://",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(
                    f"CORS origin {origin!r} must be '*' or start with http:// or https://"
                )
        return value
