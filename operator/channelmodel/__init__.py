"""channelmodel: one Teachable-Machine image model per shop channel, trained and served by a Kubernetes operator."""

__version__ = "0.1.0"
