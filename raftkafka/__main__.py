"""``python -m raftkafka`` runs the ``raftkafka`` command."""

from raftkafka.cli.main import main

main()
