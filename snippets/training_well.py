# %% [markdown]
# # Chapter 6: Training a CNN well
#
# TODO(author): what this snippet computes, in a sentence or two. It runs top
# to bottom, as a script or as a notebook; its figures and numbers feed the
# chapter's page.

# %%
import matplotlib.pyplot as plt
import numpy as np

from book import record, save_figure, setup

setup()

# %% [markdown]
# ## TODO(author): the first section


# %%
# --8<-- [start:example]
def squares(n):
    """The squares of 0 to n - 1. TODO(author): the chapter's own code."""
    if n < 1:
        raise ValueError(f"n must be a positive count, got {n}")
    return np.arange(n) ** 2


values = squares(10)
print(values.sum())
# --8<-- [end:example]
record(num_values=len(values), total=int(values.sum()))

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(np.arange(len(values)), values)
ax.set(xlabel="n", ylabel="n squared")
save_figure(fig, "example")
