# %% [markdown]
# # Autograd
#
# > Placeholder: the reverse-mode autograd engine is being written.

# %%
#| default_exp autograd

# %% nbgrader={"grade": false, "grade_id": "double", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def double(a: float) -> float:
    "Twice `a`."
    ### BEGIN SOLUTION
    return 2 * a
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_double", "locked": true, "points": 100, "schema_version": 3, "solution": false, "task": false}
assert double(2) == 4, f"double(2) returned {double(2)}, expected 4"
