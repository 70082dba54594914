"""The learning loop's Kafka side: captured samples in, ModelUpdates out.

The fine-tuning itself is scoring/training/ (torch); streams/cli/train.py wires both into
`streamrank train` and `streamrank model rollback`.
"""
