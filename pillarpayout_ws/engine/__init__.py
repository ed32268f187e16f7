"""The game's rules as pure Python: no I/O, no clock reads, no randomness.

* ``game``: ``Game``, the round state machine with wallets, bets and cashouts.
* ``phases``: the phases and the one table of legal transitions.
* ``bets``: validating bets and the per-round book of them.
* ``growth``: the multiplier curve and the pillar's integrity.
* ``fairness``: crash points, seed hashes and the seed chain.
* ``goals``: community goals and how rounds build them.
* ``events``: what the engine tells the world; ``records``: what it makes durable.
* ``config``: ``GameConfig``; ``errors``: the engine's exceptions and reject codes.
"""
