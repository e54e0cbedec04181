# %% [markdown]
# # Chapter 9, part 2: LeNet-5 and AlexNet on the shifted digits
#
# The scaled-down LeNet-5 and AlexNet, each trained from three seeds under
# the book's protocol on the 24 × 24 shifted digits. The inputs are
# standardised first: shifted by the training images' mean, as AlexNet's
# paper prepared its inputs, and scaled by their standard deviation.

# %%
from architectures_ops import alexnet_mini, layer_costs, lenet_mini, standardise
from book import load_dataset, record, run_trials, setup, table_row

setup()

# %%
# --8<-- [start:data]
data = standardise(load_dataset("shifted_digits"))
print(f"mean {data.X_train.mean():.2f}, std {data.X_train.std():.2f}")
# --8<-- [end:data]


# %%
def multiply_adds(net):
    return sum(row.multiply_adds for row in layer_costs(net, (1, 24, 24)))


# %% [markdown]
# ## LeNet-5

# %%
# --8<-- [start:lenet]
lenet = run_trials(lenet_mini, data)  # book.PROTOCOL: seeds, epochs, Adam
print(f"LeNet-5: {lenet['mean']:.3f} ± {lenet['std']:.3f}")
# --8<-- [end:lenet]
record(
    **table_row("lenet", lenet),
    row_lenet_accuracies=lenet["accuracies"],
    row_lenet_multiply_adds=multiply_adds(lenet_mini()),
    num_test=len(data.y_test),
)

# %% [markdown]
# ## AlexNet

# %%
# --8<-- [start:alexnet]
alexnet = run_trials(alexnet_mini, data)
print(f"AlexNet: {alexnet['mean']:.3f} ± {alexnet['std']:.3f}")
# --8<-- [end:alexnet]
record(
    **table_row("alexnet", alexnet),
    row_alexnet_accuracies=alexnet["accuracies"],
    row_alexnet_multiply_adds=multiply_adds(alexnet_mini()),
    input_mean=data.X_train.mean(),
    input_std=data.X_train.std(),
)
