// The app's Service Bus roles, on the queues rather than the namespace (README.md, roles table):
// Receiver on the backlog queue (the worker and its dead-letter sub-queue), Sender on the backlog
// queue (POST /api/v1/jobs, re-drives) and on each reply queue.
param namespaceName string
param backlogQueueName string
param replyQueueNames array
param principalId string

var roles = loadJsonContent('../built-in-roles.json')

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: namespaceName
}

resource backlogQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = {
  parent: namespace
  name: backlogQueueName
}

resource replyQueues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = [for replyQueueName in replyQueueNames: {
  parent: namespace
  name: replyQueueName
}]

resource backlogReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(backlogQueue.id, principalId, roles['Azure Service Bus Data Receiver'])
  scope: backlogQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Azure Service Bus Data Receiver'])
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource backlogSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(backlogQueue.id, principalId, roles['Azure Service Bus Data Sender'])
  scope: backlogQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Azure Service Bus Data Sender'])
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource replySenders 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (replyQueueName, i) in replyQueueNames: {
  name: guid(replyQueues[i].id, principalId, roles['Azure Service Bus Data Sender'])
  scope: replyQueues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Azure Service Bus Data Sender'])
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]
