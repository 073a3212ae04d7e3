// GATEWAY_REGIONS, the gateway's region table (docs/configuration.md), built from the Azure OpenAI
// accounts and the deployments on them. Everything here is a parameter, so tests/infra evaluates
// this file offline and validates the result against the settings model.
//
// accounts:    [{name, location, priority, existingResourceId}]   (main.bicep, openAiAccounts)
// endpoints:   endpoints[i] is the endpoint of accounts[i]
// deployments: [{alias, name, model, version, sku, capacity, enqueuedTokens?}]  (main.bicep, modelDeployments)
// Every deployment but the Global Batch ones serves its alias on every account; capacity is in
// units of 1,000 TPM, which is the region table's tpm. A GlobalBatch deployment is its alias's
// batch-lane target on every account (the region's `batch` map: alias -> {deployment,
// enqueued_tokens}). A GlobalBatch deployment's capacity is its enqueued-token quota in units of
// 1,000 tokens; enqueuedTokens (default capacity * 1,000, never more) is what the lane may keep
// enqueued on it.
param accounts array
param endpoints array
param deployments array
@description('Client id of the user-assigned identity; empty for system-assigned.')
param clientId string

var served = filter(deployments, d => d.sku != 'GlobalBatch')
// alias -> {deployment, tpm}, written as JSON text: aliases and deployment names are plain names.
var modelEntries = [for d in served: '"${d.alias}": {"deployment": "${d.name}", "tpm": ${d.capacity * 1000}}']
var models = json('{${join(modelEntries, ', ')}}')
var batchDeployments = filter(deployments, d => d.sku == 'GlobalBatch')
var batchTargets = [for d in batchDeployments: {
  alias: d.alias
  name: d.name
  tokens: contains(d, 'enqueuedTokens') ? d.enqueuedTokens : d.capacity * 1000
}]
var batchEntries = [for t in batchTargets: '"${t.alias}": {"deployment": "${t.name}", "enqueued_tokens": ${t.tokens}}']
var batch = json('{${join(batchEntries, ', ')}}')
var regions = [for (account, i) in accounts: {
  name: account.name
  endpoint: endpoints[i]
  priority: account.priority
  auth: 'managed_identity'
  client_id: empty(clientId) ? null : clientId
  api_style: 'v1'
  models: models
  batch: batch
}]

output json string = string(regions)
