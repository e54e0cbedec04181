# %% [markdown]
# # Chapter 9, part 4: ResNet on the shifted digits
#
# The scaled-down ResNet trained from three seeds under the chapter's
# protocol (the book's, for fewer epochs). What its shortcuts fix in a deep
# stack is measured at the end of part 1, `architectures.py`.

# %%
from architectures_ops import TRIALS, layer_costs, resnet_mini, standardise
from book import load_dataset, record, run_trials, setup, table_row

setup()

# %% [markdown]
# ## The scaled-down ResNet

# %%
# --8<-- [start:trials]
data = standardise(load_dataset("shifted_digits"))
resnet = run_trials(resnet_mini, data, TRIALS)  # seeds, epochs, Adam
print(f"test accuracy {resnet['mean']:.3f} ± {resnet['std']:.3f}")
# --8<-- [end:trials]
record(
    **table_row("resnet", resnet),
    row_resnet_accuracies=resnet["accuracies"],
    row_resnet_multiply_adds=sum(
        row.multiply_adds for row in layer_costs(resnet_mini(), (1, 24, 24))
    ),
)
