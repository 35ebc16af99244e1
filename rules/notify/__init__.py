"""Alert delivery: DingTalk and WeCom robots, plain webhooks and InfluxDB, through an outbox."""
