"""raftkafka: a Kafka-style distributed commit log with a Raft quorum of controllers."""
