"""Model checkpoints: build a module from its stored config and load it (:mod:`.load`), read
files weights-only and check stored targets (:mod:`.trust`), bring older checkpoints to today's
form (:mod:`.upgrade`), write files atomically (:mod:`.atomic`), and the one finiteness check of
weights (:mod:`.finite`).
"""
