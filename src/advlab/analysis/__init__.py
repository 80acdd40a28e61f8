"""advlab.analysis: the loss landscape around examples.

- :mod:`.flatness`: relative flatness κ of a linear layer per example (closed form, Hutchinson, brute force);
- :mod:`.hessian`: Hessian trace and top eigenvalues of the mean loss for any parameter group;
- :mod:`.lipschitz`: local input-gradient norms and a global bound for feed-forward chains;
- :mod:`.valley`: the uncanny-valley experiment along an iterative attack;
- :mod:`.llm_flatness`: output-head flatness of causal LMs at target positions (and along GCG);
- :mod:`.jobs`: the run-directory jobs behind ``advlab analyze``.
"""
