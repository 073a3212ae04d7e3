// Everything the gateway needs on one Azure OpenAI account, new or existing (deployed into the
// account's own resource group): the model deployments, diagnostic settings to the workspace, and
// the app's roles on this account only: Cognitive Services OpenAI User (inference, reads) and the
// Batch lane's custom role (files and batch jobs; main.bicep, batchLaneRole).
param accountName string
@description('Model deployments: [{alias, name, model, version, sku, capacity}] (see main.bicep).')
param deployments array
param workspaceId string
param principalId string
@description('Name (a GUID) of the Batch lane\'s custom role definition (main.bicep, batchLaneRole).')
param batchRoleDefinitionName string

var roles = loadJsonContent('../built-in-roles.json')

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

// One at a time: Azure OpenAI refuses concurrent deployment changes on one account.
@batchSize(1)
resource modelDeployments 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = [for d in deployments: {
  parent: account
  name: d.name
  sku: {
    name: d.sku
    capacity: d.capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: d.model
      version: d.version
    }
  }
}]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'Audit'
        enabled: true
      }
      {
        category: 'RequestResponse'
        enabled: true
      }
      {
        category: 'Trace'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roles['Cognitive Services OpenAI User'])
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Cognitive Services OpenAI User'])
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource batchLane 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, 'aoai-gateway-batch-lane')
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', batchRoleDefinitionName)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output id string = account.id
output endpoint string = account.properties.endpoint
