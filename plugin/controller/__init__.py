"""The placement controller: gated pods' ResourceClaims allocated by the solver before the scheduler binds them."""
