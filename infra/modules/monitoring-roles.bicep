// Telemetry with Entra auth: the app's identity publishes to Application Insights.
param appInsightsName string
param principalId string

var roles = loadJsonContent('../built-in-roles.json')

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roles['Monitoring Metrics Publisher'])
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Monitoring Metrics Publisher'])
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
