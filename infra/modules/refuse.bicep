// Stops a deployment whose parameters contradict each other. main.bicep deploys this module only
// for such a combination; its one parameter accepts no value the caller can pass, so Azure Resource
// Manager fails the deployment with `reason` in the error message. It creates nothing.
@allowed([
  'never deployed'
])
@description('Why the parameters were refused.')
param reason string

output reason string = reason
