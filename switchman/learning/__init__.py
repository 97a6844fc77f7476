"""Online learning over the offline router, and the replay that measures it.

``learner`` holds the bandit corrections (one implementation for ``switchman replay`` and the
gateway), ``context`` what it sees of a request, ``replay`` the step-by-step loop over a
stream. Nothing is imported here, so importing the learner does not load the replay's
pandas or the router.
"""
