// The backlog's Service Bus namespace: the work queue (dead-lettering after maxDeliveryCount) and
// the reply queues, both with duplicate detection (message id = job id / '<job id>:reply').
param name string
param location string
param tags object
@allowed(['Standard', 'Premium'])
param sku string
param privateNetworking bool
param backlogQueueName string
param replyQueueNames array
@description('Deliveries before Service Bus dead-letters a message (MaxDeliveryCountExceeded).')
param maxDeliveryCount int
@description('Peek-lock duration (ISO 8601, at most PT5M); the host renews it up to host.json maxAutoLockRenewalDuration.')
param lockDuration string
param duplicateDetectionWindow string

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    tier: sku
    capacity: sku == 'Premium' ? 1 : 0
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
  }
}

resource backlogQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: backlogQueueName
  properties: {
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
  }
}

resource replyQueues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [for replyQueueName in replyQueueNames: {
  parent: namespace
  name: replyQueueName
  properties: {
    lockDuration: lockDuration
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
  }
}]

output id string = namespace.id
output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output backlogQueueName string = backlogQueue.name
