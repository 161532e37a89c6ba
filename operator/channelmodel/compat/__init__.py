"""The old trainer service's HTTP API (`POST /v1/train`, `GET /v1/jobs/<id>`) on
top of ChannelModels, so the shop backend can migrate without a flag day."""
