"""Import existing Teachable Machine exports as channel versions (`channelmodel import`)."""
