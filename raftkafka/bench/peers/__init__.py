"""The systems ``raftkafka bench compare`` measures: raftkafka itself and its peers, one module each, and the
server processes the peers run in."""
