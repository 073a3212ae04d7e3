// The gateway: a Python function app on the Flex Consumption plan, with a system- or
// user-assigned managed identity. The deployment package lives in a blob container read with that
// identity. Its app settings are set by app-settings.bicep once every resource they name exists.
param planName string
param appName string
param location string
param tags object
@allowed(['SystemAssigned', 'UserAssigned'])
param identityType string
@description('Resource id of the user-assigned identity; empty for system-assigned.')
param userAssignedIdentityId string
@description('Python version of the Flex Consumption runtime.')
param pythonVersion string
param maximumInstanceCount int
param instanceMemoryMB int
@description('Concurrent HTTP requests per instance before the platform scales out (all HTTP functions of the app scale together).')
param httpPerInstanceConcurrency int
@description('https://<account>.blob.core.windows.net/<container> holding the deployment package.')
param deploymentContainerUrl string
@description('Subnet for VNet integration (private-networking mode); empty: none.')
param appSubnetId string

var userAssigned = identityType == 'UserAssigned'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  // azd finds the service's target by this tag (azure.yaml: services.api).
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: userAssigned ? {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${userAssignedIdentityId}': {}
    }
  } : {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: userAssigned ? {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: userAssignedIdentityId
          } : {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// No publishing with user names and passwords: azd deploys with Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
output systemPrincipalId string = userAssigned ? '' : app.identity.principalId
