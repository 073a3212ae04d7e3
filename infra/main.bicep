// The gateway and everything it needs, for `azd up` (docs/deploy.md). Subscription scope: creates
// the resource group, then deploys the modules into it (and, for existing Azure OpenAI accounts,
// into their own resource groups).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region of the resource group, function app, storage, Service Bus, network and monitoring.')
param location string

@description('Resource group to create or reuse; empty: rg-<environmentName>.')
param resourceGroupName string = ''

@allowed(['SystemAssigned', 'UserAssigned'])
@description('The function app\'s managed identity: the one every connection and role uses.')
param identityType string = 'SystemAssigned'

@allowed(['Standard', 'Premium'])
@description('Service Bus tier. Private networking needs Premium (Standard has no private endpoints).')
param serviceBusSku string = 'Standard'

@description('Private-networking mode: VNet integration, private endpoints and DNS zones, public access disabled.')
param privateNetworking bool = false

// The code needs Python 3.11 or newer (datetime.UTC, asyncio.timeout, enum.StrEnum).
@allowed(['3.11', '3.12', '3.13'])
@description('Python version of the Flex Consumption runtime: 3.11 or newer, as the code needs.')
param pythonVersion string = '3.11'

param maximumInstanceCount int = 100

@minValue(1)
@maxValue(1000)
@description('Concurrent HTTP requests one instance takes before Flex Consumption adds another (scaleAndConcurrency.triggers.http.perInstanceConcurrency). The platform default for Python is 1: one call in flight per instance.')
param httpPerInstanceConcurrency int = 16

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Azure OpenAI accounts, one per region, two or more: [{name: region label in GATEWAY_REGIONS, location: Azure region, priority: tier (lower first), existingResourceId: \'\' to create one, or the resource id of an existing account}].')
@minLength(2)
param openAiAccounts array

@description('Deployments made on every account: [{alias: logical model callers name, name: deployment name, model, version, sku: GlobalStandard | Standard | DataZoneStandard | GlobalBatch, capacity: units of 1,000 TPM, or for GlobalBatch units of 1,000 enqueued tokens}]. A GlobalBatch entry is the batch lane\'s target for its alias (a served alias): GATEWAY_REGIONS gets it in each region\'s batch map, with enqueuedTokens (optional, default and at most capacity * 1,000: the deployment\'s enqueued-token quota) as what the lane may keep enqueued.')
param modelDeployments array

@description('The backlog\'s Service Bus work queue (BACKLOG_QUEUE).')
param backlogQueueName string = 'backlog'

@description('Reply queues callers may name in reply_to.')
param replyQueueNames array = ['replies']

@description('Deliveries before a backlog message is dead-lettered (MaxDeliveryCountExceeded).')
@minValue(2)
param maxDeliveryCount int = 10

@description('Peek-lock duration of the queues, at most PT5M and at most host.json maxAutoLockRenewalDuration.')
param lockDuration string = 'PT1M'

@description('Duplicate-detection history window of the backlog and reply queues.')
param duplicateDetectionWindow string = 'PT1H'

@description('Storage queue of parked (throttled) jobs (PARKING_QUEUE).')
param parkingQueueName string = 'parked'

@description('NCRONTAB schedule of the re-drive timer (RETRY_TIMER_SCHEDULE).')
param retryTimerSchedule string = '*/30 * * * * *'

@description('true: `azd provision` keeps the app settings set outside the template (portal, az CLI) and overwrites only the keys it sets; false: the template\'s settings replace all of them.')
param keepExistingAppSettings bool = true

param jobsTableName string = 'jobs'
param resultsContainerName string = 'jobresults'

param vnetAddressPrefix string = '10.40.0.0/16'
param appSubnetPrefix string = '10.40.0.0/24'
param privateEndpointSubnetPrefix string = '10.40.1.0/24'

var userAssigned = identityType == 'UserAssigned'
var token = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var deploymentContainerName = 'app-package'
var openAiNames = [for account in openAiAccounts: empty(account.existingResourceId) ? 'oai-${account.name}-${token}' : last(split(account.existingResourceId, '/'))]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

// Private endpoints for Service Bus exist only on Premium: the template refuses Standard with
// private networking. This check stops the deployment (fail(), modules/refuse.bicep) before the
// network or the namespace is touched, with this reason.
module refuseStandardServiceBusWithPrivateNetworking 'modules/refuse.bicep' = {
  name: 'refuse-standard-servicebus-with-private-networking'
  scope: rg
  params: {
    refused: privateNetworking && serviceBusSku != 'Premium'
    reason: 'privateNetworking=${privateNetworking} requires serviceBusSku Premium, not ${serviceBusSku}: Service Bus Standard has no private endpoints.'
  }
}

module identity 'modules/identity.bicep' = if (userAssigned) {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-gateway-${token}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-gateway-${token}'
    appInsightsName: 'appi-gateway-${token}'
    location: location
    tags: tags
  }
}

module network 'modules/network.bicep' = if (privateNetworking) {
  name: 'network'
  scope: rg
  params: {
    name: 'vnet-gateway-${token}'
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
  }
  dependsOn: [
    refuseStandardServiceBusWithPrivateNetworking
  ]
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'stgw${token}'
    location: location
    tags: tags
    privateNetworking: privateNetworking
    deploymentContainerName: deploymentContainerName
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: 'sb-gateway-${token}'
    location: location
    tags: tags
    sku: serviceBusSku
    privateNetworking: privateNetworking
    backlogQueueName: backlogQueueName
    replyQueueNames: replyQueueNames
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    duplicateDetectionWindow: duplicateDetectionWindow
  }
  dependsOn: [
    refuseStandardServiceBusWithPrivateNetworking
  ]
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    planName: 'plan-gateway-${token}'
    appName: 'func-gateway-${token}'
    location: location
    tags: tags
    identityType: identityType
    userAssignedIdentityId: userAssigned ? identity.outputs.id : ''
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    appSubnetId: privateNetworking ? network.outputs.appSubnetId : ''
  }
}

var principalId = userAssigned ? identity.outputs.principalId : functionApp.outputs.systemPrincipalId
var clientId = userAssigned ? identity.outputs.clientId : ''

// The Batch lane uploads files and creates batches: Cognitive Services OpenAI User grants only
// read and inference data actions (no files/write, no batch-jobs/write). This custom role adds the
// Files and Batch data actions and nothing else; docs/deploy.md ("Roles") maps every upstream call
// of the code to its data action, and tests/infra checks that a role in infra/ grants each one.
// Assignable in this subscription and in the subscriptions of existing accounts.
var openAiSubscriptionScopes = [for account in openAiAccounts: empty(account.existingResourceId) ? subscription().id : '/subscriptions/${split(account.existingResourceId, '/')[2]}']

resource batchLaneRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'aoai-gateway-batch-lane')
  properties: {
    roleName: 'AOAI gateway Batch lane (${environmentName}, ${token})'
    description: 'The gateway\'s Batch lane on Azure OpenAI: upload, read and delete batch input and output files; create, read and cancel batch jobs. Also the Responses API (create, read, delete, cancel stored responses). Other inference stays with Cognitive Services OpenAI User.'
    type: 'CustomRole'
    assignableScopes: union([subscription().id], openAiSubscriptionScopes)
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.CognitiveServices/accounts/OpenAI/files/*'
          'Microsoft.CognitiveServices/accounts/OpenAI/batch-jobs/*'
          'Microsoft.CognitiveServices/accounts/OpenAI/batches/*'
          // The Responses API (POST /openai/v1/responses needs responses/write, as Azure's 403
          // names it); granted here whether or not the built-in role's current definition has it.
          'Microsoft.CognitiveServices/accounts/OpenAI/responses/*'
        ]
        notDataActions: []
      }
    ]
  }
}

module openAiNew 'modules/openai-account.bicep' = [for (account, i) in openAiAccounts: if (empty(account.existingResourceId)) {
  name: 'openai-account-${i}'
  scope: rg
  params: {
    name: openAiNames[i]
    location: account.location
    tags: tags
    privateNetworking: privateNetworking
  }
}]

module openAi 'modules/openai-wiring.bicep' = [for (account, i) in openAiAccounts: {
  name: 'openai-wiring-${i}'
  // One scope expression with the condition in its arguments: a ternary between two scopes
  // (`cond ? rg : resourceGroup(...)`) is error BCP420 since Bicep 0.36.
  scope: resourceGroup(empty(account.existingResourceId) ? subscription().subscriptionId : split(account.existingResourceId, '/')[2], empty(account.existingResourceId) ? rg.name : split(account.existingResourceId, '/')[4])
  params: {
    accountName: openAiNames[i]
    deployments: modelDeployments
    workspaceId: monitoring.outputs.workspaceId
    principalId: principalId
    batchRoleDefinitionName: batchLaneRole.name
  }
  dependsOn: [
    rg
    openAiNew
    batchLaneRole
  ]
}]

// Entra ID tokens need the account's own subdomain (https://<name>.openai.azure.com/ or
// .cognitiveservices.azure.com/): an existing account created without one answers on the regional
// endpoint (https://<region>.api.cognitive.microsoft.com/) and refuses the app's identity. New
// accounts always get one (openai-account.bicep); an existing one is checked here, and the
// deployment stops before the app settings are written.
module requireCustomSubdomain 'modules/refuse.bicep' = [for (account, i) in openAiAccounts: {
  name: 'require-custom-subdomain-${i}'
  scope: rg
  params: {
    refused: contains(openAi[i].outputs.endpoint, '.api.cognitive.')
    reason: 'Azure OpenAI account ${openAiNames[i]} (openAiAccounts[${i}]) has no custom subdomain (endpoint ${openAi[i].outputs.endpoint}): Entra ID authentication needs one. Set it on the account (az cognitiveservices account update --custom-domain <name>; it cannot be undone) or use another account.'
  }
}]

module storageRoles 'modules/storage-roles.bicep' = {
  name: 'storage-roles'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    principalId: principalId
  }
}

module serviceBusRoles 'modules/servicebus-roles.bicep' = {
  name: 'servicebus-roles'
  scope: rg
  params: {
    namespaceName: serviceBus.outputs.name
    backlogQueueName: backlogQueueName
    replyQueueNames: replyQueueNames
    principalId: principalId
  }
}

module monitoringRoles 'modules/monitoring-roles.bicep' = {
  name: 'monitoring-roles'
  scope: rg
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
    principalId: principalId
  }
}

var storageEndpointGroups = ['blob', 'queue', 'table']

module storageEndpoints 'modules/private-endpoint.bicep' = [for group in storageEndpointGroups: if (privateNetworking) {
  name: 'pe-storage-${group}'
  scope: rg
  params: {
    name: 'pe-${storage.outputs.name}-${group}'
    location: location
    tags: tags
    subnetId: network.outputs.privateEndpointSubnetId
    targetResourceId: storage.outputs.id
    groupId: group
    privateDnsZoneIds: [
      network.outputs.zoneIds[group]
    ]
  }
}]

module serviceBusEndpoint 'modules/private-endpoint.bicep' = if (privateNetworking) {
  name: 'pe-servicebus'
  scope: rg
  params: {
    name: 'pe-${serviceBus.outputs.name}'
    location: location
    tags: tags
    subnetId: network.outputs.privateEndpointSubnetId
    targetResourceId: serviceBus.outputs.id
    groupId: 'namespace'
    privateDnsZoneIds: [
      network.outputs.zoneIds.servicebus
    ]
  }
}

module openAiEndpoints 'modules/private-endpoint.bicep' = [for (account, i) in openAiAccounts: if (privateNetworking) {
  name: 'pe-openai-${i}'
  scope: rg
  params: {
    name: 'pe-${openAiNames[i]}'
    location: location
    tags: tags
    subnetId: network.outputs.privateEndpointSubnetId
    targetResourceId: openAi[i].outputs.id
    groupId: 'account'
    privateDnsZoneIds: [
      network.outputs.zoneIds.openai
      network.outputs.zoneIds.cognitiveservices
    ]
  }
}]

module gatewayRegions 'modules/gateway-regions.bicep' = {
  name: 'gateway-regions'
  scope: rg
  params: {
    accounts: openAiAccounts
    endpoints: [for (account, i) in openAiAccounts: openAi[i].outputs.endpoint]
    deployments: modelDeployments
    clientId: clientId
  }
}

// The app settings the code and the Functions host read (docs/configuration.md). Identity-based
// connections only: no connection string or key anywhere.
var identitySettings = userAssigned ? {
  AzureWebJobsStorage__clientId: clientId
  ServiceBusConnection__clientId: clientId
  AZURE_CLIENT_ID: clientId // the app's default identity for every other credential (shared/credentials.py)
} : {}

var appSettings = union({
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  BACKLOG_QUEUE: serviceBus.outputs.backlogQueueName
  PARKING_QUEUE: parkingQueueName
  RETRY_TIMER_SCHEDULE: retryTimerSchedule
  BACKLOG_JOBS_TABLE: jobsTableName
  BACKLOG_RESULTS_CONTAINER: resultsContainerName
  GATEWAY_REGIONS: gatewayRegions.outputs.json
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: userAssigned ? 'ClientId=${clientId};Authorization=AAD' : 'Authorization=AAD'
  AzureWebJobsFeatureFlags: 'EnableWorkerIndexing'
  PYTHON_ENABLE_INIT_INDEXING: '1'
}, identitySettings)

module settings 'modules/app-settings.bicep' = {
  name: 'app-settings'
  scope: rg
  params: {
    appName: functionApp.outputs.name
    appSettings: appSettings
    keepOtherSettings: keepExistingAppSettings
  }
  dependsOn: [
    storageRoles
    serviceBusRoles
    monitoringRoles
    openAi
    requireCustomSubdomain
  ]
}

output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output GATEWAY_URL string = 'https://${functionApp.outputs.defaultHostName}/api'
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
