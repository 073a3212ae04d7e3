// Stops a deployment whose parameters (or the resources they name) contradict each other:
// `refused` true makes Azure Resource Manager evaluate fail(reason), which ends the deployment
// with `reason` as its error. It creates nothing. fail() needs Bicep 0.33.13 or later
// (docs/deploy.md, "Bicep version").
//
// The reason may be any string, interpolated or not: this parameter has no @allowed list. (The
// compiler checks a module argument against @allowed even when the module's condition is false:
// error BCP036, so a refusal cannot be written as "an argument no @allowed value accepts".)
// pycep-parser 0.5.1, which checkov pins, does not know fail(): infra/.checkov.yaml skips this
// file, and tests/infra/bicep_eval.py reads fail( as its own stand-in.
@description('true: stop the deployment with `reason`.')
param refused bool

@description('Why the parameters were refused: the deployment\'s error message.')
param reason string

output refused bool = refused ? fail(reason) : false
