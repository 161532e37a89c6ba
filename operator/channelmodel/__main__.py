from channelmodel.cli import entry

entry()
