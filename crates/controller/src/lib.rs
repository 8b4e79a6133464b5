//! Sans-IO offloading controller: estimators, observations, the policy trait and the model profile.
#![warn(missing_docs)]
