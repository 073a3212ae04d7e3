// The app's Service Bus roles, on the queues rather than the namespace (README.md, roles table):
// Data Owner on the backlog queue (send, receive, and Manage for the scale monitor), Sender on
// each reply queue.
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

// Data Owner on the backlog queue only: send (POST /api/v1/jobs, re-drives), receive (the worker
// and its dead-letter sub-queue), and Manage, which the Service Bus extension's scale monitor needs
// to read the queue's message counts (without it, it falls back to the first message's enqueued
// time and target-based scaling cannot see the backlog). Microsoft's Flex Consumption Service Bus
// sample grants Data Owner on the namespace; this is the same role on the one queue the app reads.
resource backlogOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(backlogQueue.id, principalId, roles['Azure Service Bus Data Owner'])
  scope: backlogQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Azure Service Bus Data Owner'])
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
